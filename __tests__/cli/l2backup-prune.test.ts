/**
 * Calendar retention end to end: the built l2backup, nightlies on faked dates (libfaketime),
 * a real S3-compatible server on 127.0.0.1. `prune --dry-run` lists every snapshot with
 * "keep (reasons)" or "delete" and changes nothing (volume and bucket byte-identical);
 * `prune --remote` then deletes exactly what the dry run said; a bad policy is exit 2, one line.
 */
import { join } from 'node:path';
import { run } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { treeBytes } from '../helpers/snap.js';
import { withS3Server, remoteSandbox } from '../helpers/s3.js';
import { fakeTimeEnv as at } from '../helpers/faketime.js';
import { writeFileSync } from 'node:fs';

const s3 = withS3Server();

const setup = (extra: Record<string, string> = {}) => remoteSandbox(s3, 'p', {}, { TZ: 'UTC', BACKUP_LOCAL_RETENTION_DAYS: '3650', ...extra });

const remoteIds = (prefix: string) => [...treeBytes(join(s3.dir, s3.bucket, prefix, 'snapshots')).keys()].map((k) => k.split('/')[1]!).filter((v, i, a) => a.indexOf(v) === i).sort();

// Thu 11-05 (ISO week 45), Tue 11-10 and Sat 11-14 (week 46), Wed 11-18 and Fri 11-20 (week 47).
const NIGHTS = ['2026-11-05', '2026-11-10', '2026-11-14', '2026-11-18', '2026-11-20'];

test('prune --dry-run [--remote] shows keep (daily/weekly reasons) or delete and changes nothing; prune --remote then deletes just that', async () => {
  const s = setup();
  const ids: string[] = [];
  for (const [i, day] of NIGHTS.entries()) {
    writeFileSync(join(s.data, 'reports/daily.csv'), `night ${i}\n`);
    const res = await run('l2backup', ['nightly'], at(s.env, `@${day} 02:00:00`));
    expect(res.exitCode).toBe(0);
    ids.push(snapshots(s.root).find((id) => !ids.includes(id))!);
  }
  expect(remoteIds(s.prefix)).toEqual(ids);
  const env = { ...s.env, BACKUP_REMOTE_KEEP: 'daily=2,weekly=2', BACKUP_LOCAL_KEEP: 'last=4' };
  const volume = treeBytes(s.root);
  const bucket = treeBytes(join(s3.dir, s3.bucket));

  const dry = await run('l2backup', ['prune', '--dry-run', '--remote'], env);
  expect(dry.exitCode).toBe(0);
  const [n05, n10, n14, n18, n20] = ids as [string, string, string, string, string];
  const remote = dry.stdout.slice(dry.stdout.indexOf('remote '));
  expect(remote).toMatch(new RegExp(`policy daily=2,weekly=2 \\(dry run: nothing changed\\)`));
  expect(remote).toMatch(new RegExp(`${n20}  keep \\(daily 2026-11-20, weekly 2026-W47, newest complete copy of`));
  expect(remote).toContain(`${n18}  keep (daily 2026-11-18)`);
  expect(remote).toContain(`${n14}  keep (weekly 2026-W46)`);
  expect(remote).toContain(`${n10}  delete (not kept by daily=2,weekly=2)`);
  expect(remote).toContain(`${n05}  delete (not kept by daily=2,weekly=2)`);
  expect(remote).toContain(`would delete: ${n05}, ${n10}`);
  const local = dry.stdout.slice(0, dry.stdout.indexOf('remote '));
  expect(local).toContain(`${n10}  keep (last 4)`);
  expect(local).toContain(`${n05}  delete (not kept by last=4)`);

  const json = await run('l2backup', ['prune', '--dry-run', '--remote', '--json'], env);
  expect(json.exitCode).toBe(0);
  const report = JSON.parse(json.stdout);
  expect(report.remote.policy).toBe('daily=2,weekly=2');
  expect(report.remote.snapshots.map((r: { id: string; action: string }) => [r.id, r.action])).toEqual([
    [n20, 'keep'],
    [n18, 'keep'],
    [n14, 'keep'],
    [n10, 'delete'],
    [n05, 'delete'],
  ]);
  expect(report.remote.snapshots[1].reasons).toEqual(['daily 2026-11-18']);
  expect(report.local.snapshots.filter((r: { action: string }) => r.action === 'delete').map((r: { id: string }) => r.id)).toEqual([n05]);

  // Nothing changed: the volume and the bucket are byte-identical.
  expect(treeBytes(s.root)).toEqual(volume);
  expect(treeBytes(join(s3.dir, s3.bucket))).toEqual(bucket);

  const real = await run('l2backup', ['prune', '--remote'], env);
  expect(real.exitCode).toBe(0);
  expect(remoteIds(s.prefix)).toEqual([n14, n18, n20]);
  expect(snapshots(s.root)).toEqual([n10, n14, n18, n20]);
});

test('without BACKUP_*_KEEP the old day counts apply (from now); with both, the KEEP policy wins', async () => {
  const s = setup({ BACKUP_BUCKET: '', S3_ENDPOINT: '' });
  const ids: string[] = [];
  for (const day of ['2026-11-10', '2026-11-20']) {
    expect((await run('l2backup', ['nightly'], at(s.env, `@${day} 02:00:00`))).exitCode).toBe(0);
    ids.push(snapshots(s.root).find((id) => !ids.includes(id))!);
  }
  const old = await run('l2backup', ['prune', '--dry-run', '--json'], { ...s.env, BACKUP_LOCAL_RETENTION_DAYS: '1' });
  const rows = JSON.parse(old.stdout).local;
  expect(rows.policy).toBe('1 day(s) from now');
  expect(rows.snapshots.map((r: { action: string }) => r.action)).toEqual(['keep', 'delete']);
  const both = await run('l2backup', ['prune', '--dry-run', '--json'], { ...s.env, BACKUP_LOCAL_RETENTION_DAYS: '1', BACKUP_LOCAL_KEEP: 'monthly=1,daily=2' });
  const kept = JSON.parse(both.stdout).local;
  expect(kept.policy).toBe('daily=2,monthly=1');
  expect(kept.snapshots.map((r: { action: string; why: string }) => r.why)).toEqual(['daily 2026-11-20, monthly 2026-11, newest complete copy of configs', 'daily 2026-11-10']);
});

test('a bad policy is exit 2 with one line naming the variable, the bad key and the fix; nothing is touched', async () => {
  const s = setup();
  for (const [name, value, culprit] of [
    ['BACKUP_REMOTE_KEEP', 'dayly=14', /"dayly" is not a key/],
    ['BACKUP_LOCAL_KEEP', 'within=3', /within="3" is not a duration: write e\.g\. within=3d/],
    ['BACKUP_LOCAL_KEEP', 'daily=0', /daily="0" is not a count: write daily=7 or daily=all/],
  ] as const) {
    const res = await run('l2backup', ['prune', '--dry-run'], { ...s.env, [name]: value });
    expect(res.exitCode).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(lines[0]).toMatch(culprit);
    expect(lines[0]).not.toMatch(/\n\s+at /);
  }
});
