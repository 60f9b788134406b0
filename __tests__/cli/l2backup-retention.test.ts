/**
 * Retention and "latest" end to end, with the built binary on a scratch volume: restore never
 * loses the snapshot it restores, a missing source keeps its last complete copy, the clock may
 * jump (libfaketime moves the clock of one run), captures are never backups, nightly ids name
 * the scheduled minute.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox, type Sandbox } from '../helpers/run.js';
import { makeTree, ageSnapshot, idDaysAgo, snapshots } from '../helpers/tree.js';
import { deadPort } from '../helpers/receiver.js';
import { fakeTimeEnv as at } from '../helpers/faketime.js';

interface Setup extends Sandbox {
  data: string;
}

function setup(extra: Record<string, string> = {}): Setup {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  Object.assign(sb.env, { BACKUP_SOURCES: sources, ...extra });
  return { ...sb, data };
}

const diff = (a: string, b: string) => execa('diff', ['-r', a, b], { reject: false });

test('restoring an old snapshot in place never deletes it: the pre-restore capture applies no retention', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  const old = idDaysAgo(10);
  ageSnapshot(s.root, first!, old);
  writeFileSync(join(s.data, 'models/model.bin'), 'a model that went wrong');
  // (a longer retention for this run only, so that the old snapshot is still there to restore)
  expect((await run('l2backup', ['snapshot'], { ...s.env, BACKUP_LOCAL_RETENTION_DAYS: '30' })).exitCode).toBe(0);
  const res = await run('l2backup', ['restore', old, '--only', 'models'], s.env);
  expect(res.all).not.toMatch(/retention: deleted/);
  expect(res.exitCode).toBe(0);
  expect(snapshots(s.root)).toContain(old);
  expect((await diff(join(s.root, old, 'models'), join(s.data, 'models'))).exitCode).toBe(0);
  // The capture holds the state before the restore, and it is not "the last successful backup".
  const st = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(st.snapshots.filter((r: { preRestore: boolean }) => r.preRestore)).toHaveLength(1);
  expect(st.lastSuccess.kind).toBe('snapshot');
});

test('a models source missing for nights does not cost the last copy of the models; restore latest --only models finds it', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  const old = idDaysAgo(10);
  ageSnapshot(s.root, first!, old);
  renameSync(join(s.data, 'models'), join(s.dir, 'models-unmounted'));
  for (let night = 0; night < 3; night++) expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(3);
  expect(snapshots(s.root)).toContain(old);
  const dry = await run('l2backup', ['prune', '--dry-run'], s.env);
  expect(dry.stdout).toContain(`${old}  keep (newest complete copy of models`);
  const target = join(s.dir, 'restored');
  const res = await run('l2backup', ['restore', 'latest', '--only', 'models', '--target', target], s.env);
  expect(res.exitCode).toBe(0);
  expect((await diff(join(s.dir, 'models-unmounted'), join(target, 'models'))).exitCode).toBe(0);
});

test('a snapshot from the future (clock jumped back) never shadows the real ones, and prune refuses while it exists', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  const old = idDaysAgo(10);
  ageSnapshot(s.root, first!, old);
  // A run while the clock was 10 days ahead, then the clock is put right.
  writeFileSync(join(s.data, 'reports/daily.csv'), 'from the run with the wrong clock\n');
  expect((await run('l2backup', ['snapshot'], at({ ...s.env, BACKUP_LOCAL_RETENTION_DAYS: '30' }, '+10d'))).exitCode).toBe(0);
  const future = snapshots(s.root).at(-1)!;
  writeFileSync(join(s.data, 'reports/daily.csv'), 'the real newest\n');
  const real = await run('l2backup', ['snapshot'], s.env);
  expect(real.exitCode).toBe(0);
  const newest = snapshots(s.root).find((id) => id !== old && id !== future)!;
  expect(real.stderr).toMatch(/retention: .*later than now.*clock/);
  expect(snapshots(s.root)).toEqual(expect.arrayContaining([old, future, newest]));
  const dry = await run('l2backup', ['prune', '--dry-run'], s.env);
  expect(dry.stdout).toContain('would delete: nothing');
  expect(dry.stderr).toMatch(new RegExp(`snapshot ${future} is recorded as finished at .* later than now`));
  const target = join(s.dir, 'restored');
  expect((await run('l2backup', ['restore', 'latest', '--only', 'reports', '--target', target], s.env)).exitCode).toBe(0);
  expect(readFileSync(join(target, 'reports/daily.csv'), 'utf8')).toBe('the real newest\n');
});

test('after the clock moves back, a partial run does not become "latest" over the complete one before it (found by the soak)', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const complete = snapshots(s.root)[0]!;
  // A source goes missing, then a run with the clock 3 days back: partial, and "older".
  renameSync(join(s.data, 'models'), join(s.data, 'models.away'));
  expect((await run('l2backup', ['snapshot'], at(s.env, '-3d'))).exitCode).toBe(3);
  const dry = await run('l2backup', ['restore', 'latest', '--dry-run', '--target', join(s.dir, 'dry')], at(s.env, '-3d'));
  expect(dry.exitCode).toBe(0);
  expect(dry.all).toContain(`would restore snapshot ${complete}`);
});

test('a nightly names its scheduled minute (02:00:03 -> -020000), the next free second if taken; a snapshot keeps its second', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], at(s.env, '@2026-11-20 02:00:03'))).exitCode).toBe(0);
  expect(snapshots(s.root)).toEqual(['20261120-020000']);
  expect((await run('l2backup', ['nightly'], at(s.env, '@2026-11-20 02:00:03'))).exitCode).toBe(0);
  expect(snapshots(s.root)).toEqual(['20261120-020000', '20261120-020001']);
  expect((await run('l2backup', ['snapshot'], at(s.env, '@2026-11-20 14:30:17'))).exitCode).toBe(0);
  expect(snapshots(s.root).at(-1)).toMatch(/^20261120-1430(1[7-9]|2\d)$/);
});

test('a pre-restore capture never counts as the last successful backup (status, l2health)', async () => {
  const s = setup({ HEALTH_ENDPOINTS: `algo=http://127.0.0.1:${await deadPort()}/health`, HEALTH_TIMEOUT_MS: '1000' });
  expect((await run('l2backup', ['emergency-pre-restore'], s.env)).exitCode).toBe(0);
  expect(existsSync(join(s.root, '.l2/backup/last-success.json'))).toBe(false);
  const st = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(st.lastSuccess).toBeNull();
  expect(st.lastRun.kind).toBe('emergency-pre-restore');
  const health = await run('l2health', ['once', '--json'], s.env);
  const backup = JSON.parse(health.stdout).results.find((r: { name: string }) => r.name === 'backup');
  expect(backup).toMatchObject({ status: 'down', reason: expect.stringMatching(/no successful backup recorded/) });
  // And a later restore's capture does not make 'latest' point at it.
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  expect((await run('l2backup', ['emergency-pre-restore'], s.env)).exitCode).toBe(0);
  const dry = await run('l2backup', ['restore', 'latest', '--dry-run'], s.env);
  expect(dry.stdout).toContain(`would restore snapshot ${snapshots(s.root).at(-1)}`);
});
