/**
 * Attacks on state files and the alert buffer (see the report): things planted at state paths.
 * Tests run the built bin/ programs (npm run build first).
 */
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { run, sandbox, type Sandbox } from '../helpers/run.js';

const SECRET = 'attack-secret-1234';
let receivers: Receiver[] = [];
let boxes: Sandbox[] = [];
afterEach(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
  for (const b of boxes) rmSync(b.dir, { recursive: true, force: true });
  boxes = [];
});
async function setup() {
  const r = await startReceiver(SECRET);
  receivers.push(r);
  const sb = sandbox({ ALERT_WEBHOOK_URL: r.url, ALERT_WEBHOOK_SECRET: SECRET, ALERT_MIN_INTERVAL_MS: '0', ALERT_TIMEOUT_MS: '1000', ALERT_BUDGET_MS: '3000' });
  boxes.push(sb);
  mkdirSync(join(sb.root, '.l2'), { recursive: true });
  return { r, sb, buffer: join(sb.root, '.l2/alerts_buffer.jsonl') };
}

// Defect 1: appendLines/readState open a FIFO at the buffer path with a blocking open(2): the
// process hangs forever inside its ALERT_BUDGET_MS, holding the buffer mutex, ignores SIGTERM,
// and the alert is never sent.
test('a FIFO planted at the buffer path: the alert still goes out and the process exits', async () => {
  const { r, sb, buffer } = await setup();
  execFileSync('mkfifo', [buffer]);
  const res = await run('l2alert', ['send', '--level', 'error', '--title', 'fifo', 'hello'], sb.env, { timeout: 20_000, forceKillAfterDelay: 2000 });
  expect(res.exitCode).not.toBe(-1); // not killed by the test's timeout
  expect(r.received.map((x) => x.body.text)).toEqual([expect.stringContaining('fifo')]);
}, 40_000);

// Defect 2: a directory at the buffer path: EISDIR from readState is not an L2Error, so send and
// flush die with "internal error"; the spilled alert is never sent directly, and buffer-status
// reports 0 alerts (stats() gives up before counting the spill).
test('a directory at the buffer path: no internal error, the alert is delivered, status counts it', async () => {
  const { r, sb, buffer } = await setup();
  mkdirSync(buffer);
  const send = await run('l2alert', ['send', '--level', 'error', '--title', 'dirbuf', 'hello'], sb.env);
  expect(send.all).not.toContain('internal error');
  expect(r.received.map((x) => x.body.text)).toEqual([expect.stringContaining('dirbuf')]);
  const flush = await run('l2alert', ['flush'], sb.env);
  expect(flush.all).not.toContain('internal error');
  // An alert that could not be sent stays spilled, and buffer-status counts it.
  const { deadPort } = await import('../helpers/receiver.js');
  const dead = { ...sb.env, ALERT_WEBHOOK_URL: `http://127.0.0.1:${await deadPort()}/h` };
  const failed = await run('l2alert', ['send', '--level', 'error', '--title', 'dirbuf2', 'hello'], dead);
  expect(failed.all).not.toContain('internal error');
  const status = await run('l2alert', ['buffer-status', '--json'], sb.env);
  expect(JSON.parse(status.stdout)).toMatchObject({ count: 1, spilled: 1 });
});

// Defect 3: ensureStateDir refuses only a symlink as the *last* component; with .l2 itself a
// symlink, mkdir -p and writeFileAtomic go through it (spill file, locks folder).
test('a symlink planted at .l2: nothing is written through it', async () => {
  const { sb } = await setup();
  rmSync(join(sb.root, '.l2'), { recursive: true });
  const elsewhere = join(sb.dir, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(sb.root, '.l2'));
  await run('l2alert', ['send', '--level', 'error', '--title', 'symdir', 'hello'], sb.env);
  expect(readdirSync(elsewhere)).toEqual([]);
  expect(existsSync(join(elsewhere, 'locks'))).toBe(false);
});

// Defect 4: an owner record with pid 0 (or a negative pid) on this host is "alive" forever:
// process.kill(0, 0) signals our own process group and succeeds (lock.ts pidAlive). The flush
// lock then never frees: buffered alerts are never delivered and `l2alert flush` exits 0.
test('a lock record naming pid 0 is not a live owner: the flush goes through', async () => {
  const { r, sb } = await setup();
  const { hostname } = await import('node:os');
  mkdirSync(join(sb.root, '.l2/locks'), { recursive: true });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(sb.root, '.l2/locks/alert-flush.lock'), JSON.stringify({ pid: 0, host: hostname(), startedAt: '2026-01-01T00:00:00Z', command: 'x', token: 'garbage' }) + '\n');
  const res = await run('l2alert', ['flush'], sb.env);
  expect(res.all).not.toContain('another process is flushing');
  const send = await run('l2alert', ['send', '--level', 'error', '--title', 'pid0', 'hello'], sb.env);
  expect(send.exitCode).toBe(0);
  expect(r.received.map((x) => x.body.text)).toEqual([expect.stringContaining('pid0')]);
});

// Defect 5: collectSpilled reads a spill file with `.catch(() => '')`: one the job user cannot
// read (EACCES: root-owned 0600, left by an older root run) is logged as "(unreadable spill
// file NAME)" in .corrupt and then DELETED with fs.rm: the alert's content is gone, flush exits 0.
// (Needs root: runs the flush as `nobody`.)
test('an unreadable spill file is never deleted', async () => {
  const { execa } = await import('execa');
  const { chmodSync, chownSync, writeFileSync } = await import('node:fs');
  const { bin } = await import('../helpers/run.js');
  const { sb } = await setup();
  const spill = join(sb.root, '.l2/alerts_buffer.jsonl.spill');
  mkdirSync(spill, { recursive: true });
  const id = '11111111-1111-4111-8111-111111111111';
  const file = join(spill, `2026-11-25T000000000Z-${id}.json`);
  writeFileSync(file, JSON.stringify({ id, level: 'error', title: 'rootspill', message: 'm', source: 'x', key: 'x:rootspill', host: 'h', time: '2026-11-25T00:00:00.000Z' }) + '\n', { mode: 0o600 });
  chmodSync(sb.dir, 0o755);
  chmodSync(sb.envFile, 0o644);
  for (const p of [sb.root, join(sb.root, '.l2'), spill]) chownSync(p, 65534, 65534);
  await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', bin('l2alert'), 'flush'], { env: sb.env, extendEnv: false, reject: false });
  expect(existsSync(file)).toBe(true);
});

// Defect 6 (wrong output): when the flush lock is busy, `send` reports "another process is
// delivering the buffer" even though this alert was spilled and its own direct send failed
// (connection refused): index.ts send() prefers res.busy over res.error.
test('send names the real failure of its direct send, not a busy flush', async () => {
  const { spawn } = await import('node:child_process');
  const { hostname } = await import('node:os');
  const { readFileSync, writeFileSync } = await import('node:fs');
  const { deadPort } = await import('../helpers/receiver.js');
  const { sb } = await setup();
  const holder = spawn('sleep', ['60']);
  try {
    const stat = readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
    const procStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    mkdirSync(join(sb.root, '.l2/locks'), { recursive: true });
    const rec = (t: string) => JSON.stringify({ pid: holder.pid, host: hostname(), startedAt: new Date().toISOString(), command: 'held', token: t, procStart }) + '\n';
    writeFileSync(join(sb.root, '.l2/locks/alert-flush.lock'), rec('a'));
    writeFileSync(join(sb.root, '.l2/alerts_buffer.jsonl.lock'), rec('b'));
    const env = { ...sb.env, ALERT_WEBHOOK_URL: `http://127.0.0.1:${await deadPort()}/h` };
    const res = await run('l2alert', ['send', '--level', 'error', '--title', 'busy', 'hello'], env);
    expect(res.stdout).toContain('connection refused');
  } finally {
    holder.kill();
  }
});

// Defect 7: handBack walks by descriptors (O_NOFOLLOW folders, /proc/self/fd/N/name), so a link
// in the state folder (or one swapped in mid-walk) never makes root change owners outside it.
// The swap itself is a race no test can time; this pins the outcome a walk must have.
test('handBack hands back root-owned state and never changes anything a link points to', async () => {
  const { chownSync, lstatSync, statSync, writeFileSync } = await import('node:fs');
  const { handBack } = await import('../../src/state/owner.js');
  const { sb } = await setup();
  const l2 = join(sb.root, '.l2');
  const outside = join(sb.dir, 'outside');
  mkdirSync(join(outside, 'deep'), { recursive: true });
  writeFileSync(join(outside, 'deep/f'), 'x');
  mkdirSync(join(l2, 'locks/sub'), { recursive: true });
  writeFileSync(join(l2, 'locks/sub/a.lock'), 'x');
  symlinkSync(outside, join(l2, 'locks/link'));
  for (const p of [l2, join(l2, 'locks'), join(l2, 'locks/sub'), join(l2, 'locks/sub/a.lock'), outside, join(outside, 'deep'), join(outside, 'deep/f')]) chownSync(p, 0, 0);
  const n = handBack(l2, { uid: 65534, gid: 65534, why: 'test' });
  for (const p of [l2, join(l2, 'locks'), join(l2, 'locks/sub'), join(l2, 'locks/sub/a.lock'), join(l2, 'locks/link')]) expect([p, lstatSync(p).uid]).toEqual([p, 65534]);
  for (const p of [outside, join(outside, 'deep'), join(outside, 'deep/f')]) expect([p, statSync(p).uid]).toEqual([p, 0]);
  expect(n).toBe(5);
});

// Defect 8: the text was escaped, then cut, so `&amp;` could end as `&am…` (garbage in Slack).
test('a long message is cut at an entity boundary, never inside one', async () => {
  const { buildMessage } = await import('../../src/alert/message.js');
  for (let pad = 0; pad < 8; pad++) {
    const alert = { id: '22222222-2222-4222-8222-222222222222', level: 'error' as const, title: 't', message: 'x'.repeat(pad) + '&<>'.repeat(2000), source: 's', key: 's:t', host: 'h', time: '2026-11-25T00:00:00.000Z' };
    const body = JSON.parse(buildMessage([alert]).body) as { text: string; blocks: { text?: { text: string } }[] };
    for (const text of [body.text, body.blocks[0]!.text!.text]) {
      expect(text.endsWith('…')).toBe(true);
      expect(text.replace(/&(amp|lt|gt);/g, '')).not.toContain('&');
    }
  }
});
