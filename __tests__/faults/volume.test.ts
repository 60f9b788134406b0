/**
 * Alerts get out whatever the backups volume does: a real full volume (a tiny tmpfs), a real
 * read-only one (a read-only bind mount), a symlink planted at the buffer, and a process
 * frozen (SIGSTOP) while it holds the buffer mutex. Needs root (mount), as CI has.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { ROOT, run, sandbox, type Sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { fillVolume } from '../helpers/volume.js';
import { startReceiver, deadPort, type Receiver } from '../helpers/receiver.js';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups = [];
});
async function receiver(port = 0): Promise<Receiver> {
  const r = await startReceiver(undefined, port);
  cleanups.push(() => r.close());
  return r;
}
const headlines = (r: Receiver) => r.received.map((x) => x.body.text.split('\n')[0]!);

/** A sandbox whose backups root already holds state (one alert buffered while the webhook was down). */
async function prepared(root?: string): Promise<Sandbox & { down: string }> {
  const sb = sandbox(root ? { BACKUP_ROOT: root } : {});
  const down = `http://127.0.0.1:${await deadPort()}/hook`;
  const res = await run('l2alert', ['send', '--level', 'warning', '--title', 'older', 'buffered before'], { ...sb.env, ALERT_WEBHOOK_URL: down, ALERT_TIMEOUT_MS: '200', ALERT_BUDGET_MS: '500' });
  expect(res.stdout).toMatch(/buffered/);
  return { ...sb, root: root ?? sb.root, down };
}

/** The three ways an alert leaves: l2alert send, the nightly's failure alert, an l2health alert. */
async function everyAlertGetsOut(sb: Sandbox, why: RegExp) {
  const r = await receiver();
  const env = { ...sb.env, ALERT_WEBHOOK_URL: r.url, ALERT_MIN_INTERVAL_MS: '0', ALERT_BUDGET_MS: '8000', ALERT_TIMEOUT_MS: '3000' };
  const send = await run('l2alert', ['send', '--level', 'error', '--title', 'by hand', 'hello'], env);
  expect(send.exitCode).toBe(0);
  expect(send.stdout).toMatch(/delivered: HTTP 200 .*sent directly: it could not be kept on the volume/);
  expect(send.all).toMatch(why);

  const { sources } = makeTree(sb.dir);
  const nightly = await run('l2backup', ['nightly'], { ...env, BACKUP_SOURCES: sources });
  expect(nightly.exitCode).toBe(1);

  const health = await run('l2health', ['once'], { ...env, HEALTH_ENDPOINTS: `algo=http://127.0.0.1:${await deadPort()}/health`, HEALTH_FAILURE_THRESHOLD: '1' });
  expect(health.exitCode).toBe(1);
  for (const res of [send, nightly, health]) {
    expect(res.all).not.toMatch(/internal error|\n\s+at .*:\d+:\d+/);
  }
  expect(health.all).toMatch(why);
  const got = headlines(r);
  expect(got).toContain('[ERROR] by hand');
  expect(got).toContain('[ERROR] backup nightly failed');
  expect(got).toContain('[ERROR] algo DOWN');
}

test('a full volume: l2alert send, the nightly failure alert and l2health alerts reach the webhook directly, and say so', async () => {
  const volume = mkdtempSync(join(tmpdir(), 'l2full-'));
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', volume]);
  cleanups.push(async () => {
    await execa('umount', [volume]);
    rmSync(volume, { recursive: true, force: true });
  });
  const sb = await prepared(volume);
  fillVolume(volume);
  await everyAlertGetsOut(sb, /the volume is full \(ENOSPC\)/);
});

test('a read-only volume: l2alert send, the nightly failure alert and l2health alerts reach the webhook directly, and say so', async () => {
  const sb = await prepared();
  await execa('mount', ['--bind', sb.root, sb.root]);
  cleanups.push(() => execa('umount', [sb.root]));
  await execa('mount', ['-o', 'remount,bind,ro', sb.root]);
  await everyAlertGetsOut(sb, /the volume is read-only \(EROFS\)/);
  // What was buffered before is still there for when the volume is back.
  expect(readFileSync(join(sb.root, '.l2/alerts_buffer.jsonl'), 'utf8')).toMatch(/"older"/);
});

test('a symlink planted at the buffer is refused: nothing is written through it, the alert still gets out', async () => {
  const r = await receiver();
  const sb = sandbox({ ALERT_WEBHOOK_URL: r.url, ALERT_MIN_INTERVAL_MS: '0', ALERT_BUDGET_MS: '8000', ALERT_TIMEOUT_MS: '3000' });
  mkdirSync(join(sb.root, '.l2'), { recursive: true });
  const victim = join(sb.dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(sb.root, '.l2/alerts_buffer.jsonl'));
  const res = await run('l2alert', ['send', '--level', 'error', '--title', 'through a link', 'm'], sb.env);
  expect(res.all).toMatch(/refusing to follow the symlink at .*alerts_buffer\.jsonl/);
  expect(headlines(r)).toEqual(['[ERROR] through a link']);
  expect(res.exitCode).toBe(0);
  expect(readFileSync(victim, 'utf8')).toBe('precious\n');
});

describe('a process frozen (SIGSTOP) while it holds the buffer mutex', () => {
  /** A real process that takes the buffer mutex, then stops itself; on SIGCONT it releases and exits. */
  async function frozenHolder(sb: Sandbox) {
    const lock = join(sb.root, '.l2/alerts_buffer.jsonl.lock');
    const script = `import { acquireLock } from ${JSON.stringify(join(ROOT, 'dist/state/lock.js'))};
      const l = await acquireLock(${JSON.stringify(lock)}, 'frozen test holder', { waitMs: 5000 });
      process.stdout.write('held\\n');
      process.kill(process.pid, 'SIGSTOP');
      await l.release();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
      child.on('exit', (code) => reject(new Error(`the holder exited (${code}) before taking the mutex`)));
    });
    // Wait until it is really stopped (state T in /proc).
    for (let i = 0; i < 500 && !/^State:\s+T/m.test(readFileSync(`/proc/${child.pid}/status`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 10));
    return { pid: child.pid!, cont: async () => {
        child.kill('SIGCONT');
        await exited;
      } };
  }

  test('send delivers directly, within its budget, while the holder is still frozen', async () => {
    const r = await receiver();
    const sb = sandbox({ ALERT_WEBHOOK_URL: r.url, ALERT_MIN_INTERVAL_MS: '0', ALERT_BUDGET_MS: '4000', ALERT_TIMEOUT_MS: '1000' });
    const holder = await frozenHolder(sb);
    const res = await run('l2alert', ['send', '--level', 'critical', '--title', 'while frozen', 'm'], sb.env);
    expect(/^State:\s+T/m.test(readFileSync(`/proc/${holder.pid}/status`, 'utf8'))).toBe(true);
    expect(res.exitCode).toBe(0);
    expect(headlines(r)).toEqual(['[CRITICAL] while frozen']);
    expect(res.stdout).toMatch(/sent directly: the buffer could not be had/);
  });

  test('with the webhook down too, the alert is spilled to a file of its own, and the next flush delivers it', async () => {
    const port = await deadPort();
    const sb = sandbox({ ALERT_WEBHOOK_URL: `http://127.0.0.1:${port}/hook`, ALERT_MIN_INTERVAL_MS: '0', ALERT_BUDGET_MS: '3000', ALERT_TIMEOUT_MS: '500' });
    const holder = await frozenHolder(sb);
    const res = await run('l2alert', ['send', '--level', 'critical', '--title', 'spilled', 'm'], sb.env);
    expect(res.exitCode).toBe(1);
    expect(res.all).toMatch(/kept in .*alerts_buffer\.jsonl\.spill\/.*\.json for the next flush/);
    const status = JSON.parse((await run('l2alert', ['buffer-status', '--json'], sb.env)).stdout);
    expect(status).toMatchObject({ count: 1, spilled: 1 });
    await holder.cont();
    const r = await receiver(port);
    const flush = await run('l2alert', ['flush'], { ...sb.env, ALERT_BUDGET_MS: '8000', ALERT_TIMEOUT_MS: '3000' });
    expect(flush.exitCode).toBe(0);
    expect(headlines(r)).toEqual(['[CRITICAL] spilled']);
    expect(readdirSync(join(sb.root, '.l2/alerts_buffer.jsonl.spill'))).toEqual([]);
    expect(existsSync(join(sb.root, '.l2/alerts_buffer.jsonl.lock'))).toBe(false);
  });
});
