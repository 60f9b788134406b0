/**
 * `--json` progress (NDJSON) end to end: the BUILT l2backup, a real volume and a real
 * S3-compatible server. Every stdout line must parse, the last must be the summary, and a
 * failing run must still end with one, with its exit code unchanged.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run as runProgram, sandbox, type RunResult } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';
import { holdBackupLock } from '../helpers/snap.js';

const s3 = withS3Server();

// execa strips the final newline by default: keep stdout byte for byte.
const run = (prog: 'l2backup', args: string[], env: Record<string, string>) => runProgram(prog, args, env, { stripFinalNewline: false });

let n = 0;
function setup(extra: Record<string, string> = {}) {
  const probe = sandbox();
  const { sources, data } = makeTree(probe.dir);
  const sb = sandbox({ BACKUP_SOURCES: sources, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/json-${++n}-${Date.now()}` }), ...extra });
  return { ...sb, data };
}

type Line = Record<string, unknown> & { message_type: string };

/** Every stdout line parses as one JSON object with a message_type; the last is the summary. */
function lines(res: RunResult): Line[] {
  expect(res.stdout.endsWith('\n')).toBe(true);
  const parsed = res.stdout
    .slice(0, -1)
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
  for (const l of parsed) expect(['status', 'error', 'summary']).toContain(l.message_type);
  expect(parsed.filter((l) => l.message_type === 'summary')).toHaveLength(1);
  expect(parsed[parsed.length - 1]!.message_type).toBe('summary');
  return parsed;
}

test('nightly --json: status lines for the snapshot and the upload, then one summary; human lines on stderr only', async () => {
  const sb = setup();
  const res = await run('l2backup', ['nightly', '--json'], sb.env);
  expect(res.exitCode).toBe(0);
  const out = lines(res);
  const status = out.filter((l) => l.message_type === 'status');
  const snap = status.filter((l) => l.phase === 'snapshot');
  const up = status.filter((l) => l.phase === 'upload');
  expect(snap.length).toBeGreaterThanOrEqual(1);
  expect(up.length).toBeGreaterThanOrEqual(1);
  for (const l of status) {
    expect(typeof l.seconds_elapsed).toBe('number');
    expect(typeof l.files_done).toBe('number');
    expect(typeof l.bytes_done).toBe('number');
    expect(typeof l.bytes_per_second).toBe('number');
  }
  // The walk does not know its total in advance; the upload does.
  expect(snap[0]).not.toHaveProperty('percent_done');
  expect(up[0]!.percent_done).toBeGreaterThan(0);
  expect(up[0]!.percent_done).toBeLessThanOrEqual(1);
  const sum = out[out.length - 1]!;
  expect(sum).toMatchObject({ message_type: 'summary', command: 'nightly', exit_code: 0, outcome: 'ok', run_status: 'ok', remote: 'uploaded', files: 29, warnings: 0 });
  expect(sum.snapshot_id).toMatch(/^\d{8}-\d{6}$/);
  expect(snap[0]!.snapshot_id).toBe(sum.snapshot_id);
  expect(res.stderr).toMatch(/INFO {2}l2backup: nightly \d{8}-\d{6}: 29 files/);
});

test('status lines are throttled: at most one a second per phase (plus one at each phase change)', async () => {
  const sb = setup();
  // Enough files that an unthrottled writer would print thousands of lines.
  const many = join(sb.data, 'logs', 'many');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(many);
  for (let i = 0; i < 3000; i++) writeFileSync(join(many, `f${i}`), randomBytes(16));
  const res = await run('l2backup', ['snapshot', '--json'], { ...sb.env, BACKUP_BUCKET: '' });
  expect(res.exitCode).toBe(0);
  const out = lines(res);
  const snap = out.filter((l) => l.message_type === 'status' && l.phase === 'snapshot');
  const sum = out[out.length - 1]!;
  expect(snap.length).toBeLessThanOrEqual(1 + Math.ceil(Number(sum.seconds_elapsed)));
  for (let i = 1; i < snap.length; i++) expect(Number(snap[i]!.seconds_elapsed) - Number(snap[i - 1]!.seconds_elapsed)).toBeGreaterThanOrEqual(0.9);
});

test('restore --json: status with percent_done, summary with what was restored', async () => {
  const sb = setup({ BACKUP_BUCKET: '' });
  expect((await run('l2backup', ['snapshot'], sb.env)).exitCode).toBe(0);
  const res = await run('l2backup', ['restore', 'latest', '--target', join(sb.dir, 'restored'), '--json'], sb.env);
  expect(res.exitCode).toBe(0);
  const out = lines(res);
  const st = out.filter((l) => l.message_type === 'status' && l.phase === 'restore');
  expect(st.length).toBeGreaterThanOrEqual(1);
  expect(typeof st[0]!.percent_done).toBe('number');
  const total = st[0]!.total_files as number;
  expect(total).toBeGreaterThanOrEqual(26); // the tree's files (and the env copy, when there is one)
  expect(out[out.length - 1]).toMatchObject({ message_type: 'summary', command: 'restore', exit_code: 0, outcome: 'ok', origin: 'local', files_restored: total, total_files: total, mismatches: 0 });
  expect(readFileSync(join(sb.dir, 'restored/reports/daily.csv'), 'utf8')).toBe('date,pnl\n2025-10-03,12.5\n');
});

test('verify --json on a damaged snapshot: error lines, exit 1 as before, the report in the summary', async () => {
  const sb = setup({ BACKUP_BUCKET: '' });
  expect((await run('l2backup', ['snapshot'], sb.env)).exitCode).toBe(0);
  const id = readFileSync(join(sb.root, '.l2/backup/last-run.json'), 'utf8').match(/"id": "(\d{8}-\d{6})"/)![1]!;
  const f = join(sb.root, id, 'reports/daily.csv');
  writeFileSync(f, 'tampered\n');
  const res = await run('l2backup', ['verify', id, '--json'], sb.env);
  expect(res.exitCode).toBe(1);
  const out = lines(res);
  expect(out.filter((l) => l.message_type === 'status' && l.phase === 'verify').length).toBeGreaterThanOrEqual(1);
  expect(out).toContainEqual({ message_type: 'error', level: 'error', message: 'changed: reports/daily.csv' });
  const sum = out[out.length - 1]!;
  expect(sum).toMatchObject({ command: 'verify', exit_code: 1, outcome: 'failed', report: { id, ok: false, changed: ['reports/daily.csv'], missing: [], extra: [] } });
});

test('failing runs still end with a summary and their usual exit code: lock held (75), bad config (2)', async () => {
  const sb = setup({ BACKUP_BUCKET: '' });
  const held = await holdBackupLock(sb.root);
  try {
    const res = await run('l2backup', ['nightly', '--json'], sb.env);
    expect(res.exitCode).toBe(75);
    const out = lines(res);
    expect(out[0]).toMatchObject({ message_type: 'error', level: 'error' });
    expect(out[0]!.message).toMatch(/lock/);
    expect(out[out.length - 1]).toMatchObject({ message_type: 'summary', command: 'nightly', exit_code: 75, outcome: 'locked' });
  } finally {
    await held.kill();
  }
  const bad = await run('l2backup', ['restore', 'latest', '--json'], { ...sb.env, L2_METRICS_DIR: join(sb.dir, 'no-such-folder') });
  expect(bad.exitCode).toBe(2);
  const out = lines(bad);
  expect(out[0]!.message).toMatch(/^L2_METRICS_DIR \(from env\)=/);
  expect(out[out.length - 1]).toMatchObject({ message_type: 'summary', command: 'restore', exit_code: 2, outcome: 'usage' });
});

test('a failed upload under --json: error lines, then the summary with exit 1; the S3 secret never shows', async () => {
  const sb = setup({ S3_ENDPOINT: 'http://127.0.0.1:9/', S3_SECRET_ACCESS_KEY: 'very-secret-key-123', S3_TIMEOUT_MS: '1000' });
  const res = await run('l2backup', ['nightly', '--json'], sb.env);
  expect(res.exitCode).toBe(1);
  const out = lines(res);
  expect(out.some((l) => l.message_type === 'error')).toBe(true);
  expect(out[out.length - 1]).toMatchObject({ exit_code: 1, outcome: 'failed', run_status: 'pending' });
  expect(res.stdout).not.toContain('very-secret-key-123');
});
