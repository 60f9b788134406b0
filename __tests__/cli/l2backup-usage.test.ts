/**
 * What the backups cost, end to end: nightlies on faked dates (libfaketime) with the dev S3
 * server. Local bytes must equal `du -sb` over the same snapshot folders given oldest first
 * (du counts each inode once, for the first folder that holds it); remote bytes must equal the
 * bytes of every object the server stores; the forecast past a budget warns in status and alerts
 * in the nightly.
 */
import { readdirSync, readFileSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';
import { fakeTimeEnv as at } from '../helpers/faketime.js';
import { linearForecast, trend } from '../../src/backup/usage.js';

const DAY = 86_400_000;

const s3 = withS3Server();

function objectBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile() && e.name.endsWith('._S3rver_object')) total += statSync(join(e.parentPath, e.name)).size;
  return total;
}

test('status: local bytes as du -sb counts them, remote bytes as stored, growth and forecast; over budget warns and alerts', async () => {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  const prefix = `u${Math.random().toString(36).slice(2, 8)}`;
  const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}` }), BACKUP_SOURCES: sources, TZ: 'UTC', BACKUP_LOCAL_RETENTION_DAYS: '3650' };
  for (const [i, day] of ['2026-11-16', '2026-11-18', '2026-11-20'].entries()) {
    appendFileSync(join(data, 'logs/guardrails.log'), 'x'.repeat(10_000 * (i + 1)));
    writeFileSync(join(data, `reports/r${i}.csv`), 'y'.repeat(5_000));
    expect((await run('l2backup', ['nightly'], at(env, `@${day} 02:00:00`))).exitCode).toBe(0);
  }
  const ids = snapshots(sb.root);
  expect(ids).toHaveLength(3);

  const st = await run('l2backup', ['status', '--json', '--du'], env);
  expect(st.exitCode).toBe(0);
  const usage = JSON.parse(st.stdout).usage;
  expect(usage.local.counted).toBe('du');
  const du = await execa('du', ['-sb', ...ids.map((id) => join(sb.root, id))]);
  const duBytes = du.stdout.split('\n').map((l) => Number(l.split('\t')[0]));
  expect(usage.local.snapshots.map((s: { ownBytes: number }) => s.ownBytes)).toEqual(duBytes);
  expect(usage.local.bytes).toBe(duBytes.reduce((a, b) => a + b, 0));
  // Most of the second and third snapshots is hard links into the first.
  expect(usage.local.snapshots[2].sharedBytes).toBeGreaterThan(usage.local.snapshots[2].ownBytes);
  for (const [i, id] of ids.entries()) expect(usage.local.snapshots[i].bytes).toBe(Number((await execa('du', ['-sb', join(sb.root, id)])).stdout.split('\t')[0]));
  // Every object counts on the remote.
  expect(usage.remote.bytes).toBe(objectBytes(join(s3.dir, s3.bucket, prefix)));
  expect(usage.remote.unknown).toEqual([]);
  expect(usage.samples).toBe(3);
  expect(usage.remote.forecast30d).toBeGreaterThan(usage.remote.bytes);
  expect(usage.local.growth30d).toBeGreaterThan(0);

  const human = await run('l2backup', ['status'], { ...env, BACKUP_REMOTE_BUDGET_BYTES: '1KB' });
  expect(human.stdout).toMatch(/remote storage: .* stored in 3 snapshot\(s\); \+.* over \d+(\.\d)? day\(s\); forecast in 30 days .* \(budget 1000 B\): OVER BUDGET/);
  expect(human.stdout).toMatch(/local storage: .* on the volume in 3 snapshot\(s\) \(as recorded: bytes each backup copied; 'status --du' counts as du does\)/);
  expect((await run('l2backup', ['status', '--du'], env)).stdout).toMatch(/local storage: .* on the volume in 3 snapshot\(s\) \(du, hard links once\)/);
  expect(human.stderr).toMatch(/remote storage over budget: .* BACKUP_REMOTE_BUDGET_BYTES/);

  const nightly = await run('l2backup', ['nightly'], at({ ...env, BACKUP_REMOTE_BUDGET_BYTES: '1KB' }, '@2026-11-21 02:00:00'));
  expect(nightly.exitCode).toBe(0);
  expect(nightly.all).toMatch(/ALERT.*backup storage over budget \(remote\)/);

  const bad = await run('l2backup', ['status'], { ...env, BACKUP_LOCAL_BUDGET_BYTES: '50 parsecs' });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.trim()).toMatch(/^[^\n]*BACKUP_LOCAL_BUDGET_BYTES.*a size such as 50GB[^\n]*$/);
});

test('status without --du takes the bytes each backup recorded and walks no snapshot; --du walks them', async () => {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  const env = { ...sb.env, BACKUP_SOURCES: sources, BACKUP_LOCAL_RETENTION_DAYS: '3650' };
  for (let i = 0; i < 2; i++) {
    writeFileSync(join(data, `reports/r${i}.csv`), 'y'.repeat(5_000 * (i + 1)));
    expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  }
  const ids = snapshots(sb.root);
  const totals = ids.map((id) => JSON.parse(readFileSync(join(sb.root, id, '.l2-manifest.json'), 'utf8')).totals);
  const recorded = async () => JSON.parse((await run('l2backup', ['status', '--json'], env)).stdout).usage.local;
  const before = await recorded();
  expect(before.counted).toBe('manifests');
  // The oldest snapshot owns all its bytes; a later one what it copied rather than linked.
  expect(before.snapshots.map((s: { ownBytes: number }) => s.ownBytes)).toEqual([totals[0].bytes, totals[1].newBytes]);
  expect(before.snapshots.map((s: { sharedBytes: number }) => s.sharedBytes)).toEqual([0, totals[1].bytes - totals[1].newBytes]);
  expect(before.snapshots.map((s: { uniqueBytes: number | null }) => s.uniqueBytes)).toEqual([null, null]);
  expect(before.bytes).toBe(totals[0].bytes + totals[1].newBytes);
  // A file put into a snapshot folder by hand: only a walk sees it.
  const duBefore = JSON.parse((await run('l2backup', ['status', '--json', '--du'], env)).stdout).usage.local.bytes;
  writeFileSync(join(sb.root, ids[1]!, 'stray.bin'), Buffer.alloc(123_456));
  expect((await recorded()).bytes).toBe(before.bytes);
  expect(JSON.parse((await run('l2backup', ['status', '--json', '--du'], env)).stdout).usage.local.bytes).toBe(duBefore + 123_456);
});

test('the forecast is the least-squares line 30 days on; growth spans the last 30 days', () => {
  const now = Date.UTC(2026, 10, 20);
  // 1 GB a month of snapshots: 1e9/30 a day, exactly on the line.
  const history = Array.from({ length: 40 }, (_, i) => ({ t: now - (40 - i) * DAY, y: Math.round(5e9 + ((40 - (40 - i)) * 1e9) / 30) }));
  const bytes = Math.round(5e9 + (40 * 1e9) / 30);
  const t = trend(now, bytes, history, 6.5e9, 'BACKUP_REMOTE_BUDGET_BYTES');
  expect(Math.abs(t.forecast30d! - (bytes + 1e9))).toBeLessThan(10);
  expect(Math.abs(t.growth30d! - 1e9)).toBeLessThan(10);
  expect(t.growthDays).toBe(30);
  expect(t.overBudget).toMatch(/forecast 6\.\d+ GiB passes BACKUP_REMOTE_BUDGET_BYTES \(6\.\d+ GiB\)/);
  expect(trend(now, bytes, [], undefined, 'X')).toMatchObject({ forecast30d: null, growth30d: null, overBudget: null });
  expect(linearForecast([{ t: 1, y: 5 }, { t: 1, y: 7 }], 10)).toBeNull();
});
