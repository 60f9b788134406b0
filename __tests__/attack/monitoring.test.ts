/**
 * Attacks on issue 13's monitoring outputs (status page, metrics, pings, --json progress), run
 * against the built programs. Each test names the defect it pins down.
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { bin, run, sandbox, modelsSandbox } from '../helpers/run.js';
import { startReceiver } from '../helpers/receiver.js';

test('report -o never overwrites a state file or writes into a snapshot on the volume (exit 2, nothing changed)', async () => {
  const box = modelsSandbox();
  expect((await run('l2backup', ['nightly'], box.env)).exitCode).toBe(0);
  const runs = join(box.root, '.l2', 'backup', 'runs.jsonl');
  const before = readFileSync(runs, 'utf8');
  const snap = readdirSync(box.root).find((n) => /^\d{8}-\d{6}$/.test(n))!;
  // The same volume reached through a symlinked folder is the same volume.
  const alias = join(box.dir, 'alias');
  symlinkSync(box.root, alias);
  for (const o of [runs, join(box.root, snap, 'status.html'), join(alias, snap, 'status.html'), join(box.root, 'status.html')]) {
    const res = await run('l2backup', ['report', '-o', o], box.env);
    expect(res.exitCode).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/inside the backups volume .*BACKUP_ROOT/);
  }
  expect(readFileSync(runs, 'utf8')).toBe(before);
  expect((await run('l2backup', ['verify', snap], box.env)).exitCode).toBe(0);
  // The page's own folder on the volume stays allowed, by name too.
  const own = join(box.root, '.l2', 'report', 'index.html');
  expect((await run('l2backup', ['report', '-o', own], box.env)).exitCode).toBe(0);
  expect(readFileSync(own, 'utf8')).toMatch(/^<!doctype html>/);
}, 120_000);

test('--json: a run ended by the signal timeout (a ping that never answers) still ends with its summary line', async () => {
  const hc = await startReceiver();
  try {
    hc.script.push({ status: 200, hang: true }, { status: 200, hang: true });
    const box = modelsSandbox({ BACKUP_PING_URL: `http://127.0.0.1:${hc.port}/ping/abcdef-uuid`, BACKUP_PING_TIMEOUT_MS: '60000' });
    const child = execa('node', [bin('l2backup'), 'nightly', '--json'], { env: box.env, extendEnv: false, reject: false, forceKillAfterDelay: false });
    // The backup itself is done (its ALERT line) while the /start ping still hangs: then SIGTERM.
    await new Promise<void>((res) => {
      let seen = '';
      child.stderr!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (/ALERT .*backup nightly ok/.test(seen)) res();
      });
    });
    child.kill('SIGTERM');
    const res = await child;
    const lines = String(res.stdout).trim().split('\n');
    const parsed = lines.map((l) => JSON.parse(l) as { message_type: string; exit_code?: number });
    const last = parsed[parsed.length - 1]!;
    expect(last.message_type).toBe('summary');
    expect(last.exit_code).toBe(res.exitCode);
    expect(parsed.filter((l) => l.message_type === 'summary')).toHaveLength(1);
    expect(String(res.stdout) + String(res.stderr)).not.toContain('abcdef-uuid');
  } finally {
    await hc.close();
  }
}, 120_000);

test('the status page never shows part of a secret: text cut to length is cut after the secret is masked', async () => {
  const secret = 'SuperSecretKey0123456789abcdefXYZ';
  const box = sandbox({ S3_SECRET_ACCESS_KEY: secret, S3_ACCESS_KEY_ID: 'AKIAEXAMPLE1', BACKUP_BUCKET: 's3://bkt/p', S3_ENDPOINT: 'http://127.0.0.1:9' });
  mkdirSync(join(box.root, '.l2', 'backup'), { recursive: true });
  // A run record (from a copy of a volume, or an older version) whose long error ends in the key,
  // placed across every cut length the page uses.
  const lines = [230, 380, 390, 395].map((pad, i) =>
    JSON.stringify({ id: `20250101-00000${i}`, kind: 'nightly', status: 'failed', finishedAt: '2025-01-01T00:00:00Z', error: `${'x'.repeat(pad)} key=${secret}` }),
  );
  writeFileSync(join(box.root, '.l2', 'backup', 'runs.jsonl'), lines.join('\n') + '\n');
  const page = join(box.dir, 'page.html');
  const res = await run('l2backup', ['report', '-o', page], box.env);
  expect(res.exitCode).toBe(0);
  const html = readFileSync(page, 'utf8');
  expect(html).toContain('key=');
  for (const m of html.matchAll(/key=([A-Za-z0-9]*)/g)) expect(m[1]!.length === 0 || !secret.startsWith(m[1]!.slice(0, 4))).toBe(true);
  expect(html).not.toContain(secret.slice(0, 8));
}, 60_000);

test('--json read by a consumer that goes away (| head -1): the backup still runs to the end, its exit code says how it went', async () => {
  const box = modelsSandbox();
  // stdout is a pipe whose reader is gone from the start: every NDJSON line meets EPIPE.
  const child = spawn('node', [bin('l2backup'), 'snapshot', '--json'], { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  const last = JSON.parse(readFileSync(join(box.root, '.l2', 'backup', 'last-run.json'), 'utf8')) as { status: string; id: string };
  expect(last.status).toBe('ok');
  expect(readdirSync(box.root)).toContain(last.id);
  expect(code).toBe(0);
  expect(stderr).toMatch(/ALERT .*backup snapshot ok/);
}, 60_000);
