/** l2backup end to end on the local volume: the built binary, real files, the runbook's own commands. */
import { readFileSync, writeFileSync, statSync, existsSync, readdirSync, rmSync, mkdirSync, utimesSync, lstatSync, readlinkSync, appendFileSync, symlinkSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { run, sandbox, type Sandbox } from '../helpers/run.js';
import { tracked, waitFor } from '../helpers/cleanup.js';
import { makeTree, ageSnapshot, idDaysAgo, snapshots } from '../helpers/tree.js';

interface Setup extends Sandbox {
  data: string;
}

function setup(extra: Record<string, string> = {}, envFileText = 'FOO=bar\nS3_SECRET_ACCESS_KEY=\n'): Setup {
  const sb = sandbox({}, envFileText);
  const { data, sources } = makeTree(sb.dir);
  Object.assign(sb.env, { BACKUP_SOURCES: sources, ...extra });
  return { ...sb, data };
}


const sh = (script: string) => execa('sh', ['-c', script], { reject: false, all: true });

test('first and incremental snapshots: full trees, unchanged files hard-linked, only changed bytes new', async () => {
  const s = setup();
  const first = await run('l2backup', ['nightly'], s.env);
  expect(first.exitCode).toBe(0);
  expect(first.stderr).toMatch(/ALERT .*\[info\] backup nightly ok: snapshot \d{8}-\d{6}/);
  appendFileSync(join(s.data, 'logs/guardrails.log'), 'guardrail tripped\n');
  const second = await run('l2backup', ['nightly'], s.env);
  expect(second.exitCode).toBe(0);
  const [a, b] = snapshots(s.root);
  expect(a).toBeDefined();
  expect(b).toBeDefined();
  expect(a).not.toBe(b);
  const ino = (id: string, p: string) => statSync(join(s.root, id, p)).ino;
  expect(ino(a!, 'models/model.bin')).toBe(ino(b!, 'models/model.bin'));
  expect(ino(a!, 'logs/guardrails.log')).not.toBe(ino(b!, 'logs/guardrails.log'));
  expect(readFileSync(join(s.root, b!, 'logs/guardrails.log'), 'utf8')).toContain('tripped');
  expect(readlinkSync(join(s.root, b!, 'models/current'))).toBe('model.bin');
  const m = JSON.parse(readFileSync(join(s.root, b!, '.l2-manifest.json'), 'utf8'));
  expect(m.totals.linkedFiles).toBeGreaterThan(20);
  // new bytes: the changed log plus the regenerated env copy
  expect(m.totals.newBytes).toBeLessThan(200);
  expect(m.base).toBe(a);
  const status = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(status.lastRun).toMatchObject({ status: 'ok', id: b, kind: 'nightly' });
  expect(status.snapshots.map((x: { id: string }) => x.id)).toEqual([a, b]);
  const bare = await run('l2backup', [], s.env);
  expect(bare.exitCode).toBe(0);
  expect(bare.stdout).toContain(b!);
});

test("the runbook's local restore commands work literally on what l2backup writes", async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [ts] = snapshots(s.root);
  // Scenario 2: restore models from a given TIMESTAMP
  const restore2 = join(s.dir, 'restore2');
  mkdirSync(restore2);
  expect((await sh(`TIMESTAMP="${ts}"; cp -r "${s.root}/$TIMESTAMP/models/"* ${restore2}/`)).exitCode).toBe(0);
  expect((await sh(`diff -r ${join(s.data, 'models')} ${restore2}`)).exitCode).toBe(0);
  // Scenario 3: emergency-pre-restore, then LATEST=$(ls -t ...) must still pick the nightly
  writeFileSync(join(s.data, 'models/model.bin'), 'broken');
  expect((await run('l2backup', ['emergency-pre-restore'], s.env)).exitCode).toBe(0);
  const restore3 = join(s.dir, 'restore3');
  mkdirSync(restore3);
  const r3 = await sh(`LATEST=$(ls -t ${s.root}/ | head -1); echo "$LATEST"; cp -r "${s.root}/$LATEST/"* ${restore3}/`);
  expect(r3.all.trim().split('\n')[0]).toBe(ts);
  expect(readdirSync(restore3).sort()).toEqual(['configs', 'logs', 'models', 'reports']);
  expect(readFileSync(join(restore3, 'models/model.bin')).length).toBe(300_000);
  for (const src of ['logs', 'reports']) expect((await sh(`diff -r ${join(s.data, src)} ${join(restore3, src)}`)).exitCode).toBe(0);
  // Scenario 4: configs only, and the redacted env copy
  const restore4 = join(s.dir, 'restore4');
  mkdirSync(restore4);
  expect((await sh(`TIMESTAMP="${ts}"; cp -r "${s.root}/$TIMESTAMP/configs/"* ${restore4}/`)).exitCode).toBe(0);
  expect((await sh(`diff -r -x envs ${join(s.data, 'configs')} ${restore4}`)).exitCode).toBe(0);
  expect(readFileSync(join(restore4, 'envs/.env.backup'), 'utf8')).toContain('FOO=bar');
  expect(existsSync(join(s.root, '.pre-restore'))).toBe(true);
});

test('restore: all sources to a target, one source, and in place with a pre-restore capture', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const target = join(s.dir, 'target');
  const all = await run('l2backup', ['restore', 'latest', '--target', target], s.env);
  expect(all.exitCode).toBe(0);
  expect(all.stderr).toMatch(/every file matched its sha256/);
  for (const src of ['models', 'logs', 'reports']) expect((await sh(`diff -r ${join(s.data, src)} ${join(target, src)}`)).exitCode).toBe(0);

  const only = join(s.dir, 'only');
  expect((await run('l2backup', ['restore', 'latest', '--only', 'models', '--target', only], s.env)).exitCode).toBe(0);
  expect(readdirSync(only)).toEqual(['models']);

  const dry = await run('l2backup', ['restore', 'latest', '--only', 'models', '--dry-run'], s.env);
  expect(dry.exitCode).toBe(0);
  expect(dry.stdout).toMatch(/would restore snapshot/);

  rmSync(join(s.data, 'models'), { recursive: true });
  writeFileSync(join(s.data, 'configs/settings.json'), 'corrupt');
  const inPlace = await run('l2backup', ['restore', 'latest', '--only', 'models,configs'], s.env);
  expect(inPlace.exitCode).toBe(0);
  expect(readFileSync(join(s.data, 'models/model.bin')).length).toBe(300_000);
  expect(readFileSync(join(s.data, 'configs/settings.json'), 'utf8')).toBe('{"mode":"paper"}\n');
  expect(readdirSync(join(s.root, '.pre-restore'))).toHaveLength(1);
  const bad = await run('l2backup', ['restore', 'latest', '--only', 'nope', '--target', target], s.env);
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr).toMatch(/--only nope: snapshot .* has no source "nope"/);
});

test.each(['../etc', 'latest/..', '/etc', '20990101-000000', '20251399-000000', ''])('restore refuses the id %j', async (id) => {
  const s = setup();
  await run('l2backup', ['nightly'], s.env);
  const before = readdirSync(s.root).sort();
  const res = await run('l2backup', ['restore', id, '--target', join(s.dir, 't')], s.env);
  expect(res.exitCode).toBe(2);
  expect(res.stderr.trim().split('\n')).toHaveLength(1);
  expect(res.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(join(s.dir, 't'))).toBe(false);
  expect(readdirSync(s.root).sort()).toEqual(before);
});

test('verify detects a flipped byte, a missing file and an extra file', async () => {
  const s = setup();
  await run('l2backup', ['nightly'], s.env);
  const [id] = snapshots(s.root);
  expect((await run('l2backup', ['verify'], s.env)).exitCode).toBe(0);
  const f = join(s.root, id!, 'reports/daily.csv');
  const bytes = readFileSync(f);
  bytes[0] = bytes[0]! ^ 1;
  writeFileSync(f, bytes);
  rmSync(join(s.root, id!, 'models/empty.txt'));
  writeFileSync(join(s.root, id!, 'reports/intruder.txt'), 'x');
  const res = await run('l2backup', ['verify', id!, '--json'], s.env);
  expect(res.exitCode).toBe(1);
  // --json is NDJSON (README "JSON progress"): the report is in the summary, the last line.
  const rep = JSON.parse(res.stdout.trim().split('\n').pop()!).report;
  expect(rep.changed).toEqual(['reports/daily.csv']);
  expect(rep.missing).toEqual(['models/empty.txt']);
  expect(rep.extra).toEqual(['reports/intruder.txt']);
});

test('a missing source: the snapshot is kept, exit 3, a warning alert names it', async () => {
  const s = setup();
  rmSync(join(s.data, 'reports'), { recursive: true });
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(3);
  expect(res.stderr).toMatch(/ALERT .*\[warning\] backup nightly partial: .*reports \(.*does not exist\)/);
  const [id] = snapshots(s.root);
  expect(existsSync(join(s.root, id!, 'models/model.bin'))).toBe(true);
  expect(JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout).lastRun.status).toBe('partial');
});

test('retention: old snapshots go only after a new one completes; the newest complete one always stays', async () => {
  const s = setup();
  await run('l2backup', ['snapshot'], s.env);
  const [first] = snapshots(s.root);
  for (const days of [10, 9]) {
    const id = idDaysAgo(days);
    cpSync(join(s.root, first!), join(s.root, `${id}-copy`), { recursive: true, verbatimSymlinks: true });
    ageSnapshot(s.root, `${id}-copy`, id);
  }
  ageSnapshot(s.root, first!, idDaysAgo(8));
  const old = snapshots(s.root);
  expect(old).toHaveLength(3);
  // A streak with no successful snapshot: prune keeps the newest complete one, whatever its age.
  const dry = await run('l2backup', ['prune', '--dry-run'], s.env);
  expect(dry.stdout).toContain(`would delete: ${old[0]}, ${old[1]}`);
  expect(dry.stdout).toMatch(new RegExp(`${old[2]}  keep \\(newest complete copy of`));
  expect(snapshots(s.root)).toEqual(old);
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  const now = snapshots(s.root);
  expect(now).toHaveLength(1);
  expect(old).not.toContain(now[0]);
});

test('a file that keeps changing during the backup is stored as read and flagged, not failed', async () => {
  const s = setup();
  const log = join(s.data, 'logs/live.log');
  writeFileSync(log, Buffer.alloc(48 * 1024 * 1024, 97));
  const writer = tracked(execa('node', ['-e', `const fs=require('fs');setInterval(()=>fs.appendFileSync(${JSON.stringify(log)}, 'x'.repeat(4096)),1)`], { reject: false }));
  await waitFor('the writer to start appending', () => statSync(log).size > 48 * 1024 * 1024);
  try {
    const res = await run('l2backup', ['nightly'], s.env);
    expect(res.exitCode).toBe(0);
    expect(res.stderr).toMatch(/logs: live\.log changed during backup; stored what was read/);
  } finally {
    writer.kill();
    await writer;
  }
  const [id] = snapshots(s.root);
  const entry = gunzipSync(readFileSync(join(s.root, id!, '.l2-files.jsonl.gz')))
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((e) => e.p === 'live.log');
  expect(entry.changed).toBe(true);
  expect(statSync(join(s.root, id!, 'logs/live.log')).size).toBe(entry.size);
  expect((await run('l2backup', ['verify', id!], s.env)).exitCode).toBe(0);
});

test('cleanup-logs deletes old backed-up logs and keeps every log that is in no backup', async () => {
  const s = setup();
  const old = (Date.now() - 10 * 86_400_000) / 1000;
  const backedUp = join(s.data, 'logs/2025/10/fills-1.log');
  const changedAfter = join(s.data, 'logs/2025/10/fills-2.log');
  utimesSync(backedUp, old, old);
  utimesSync(changedAfter, old, old);
  await run('l2backup', ['nightly'], s.env);
  writeFileSync(changedAfter, 'rewritten after the backup');
  utimesSync(changedAfter, old, old);
  const neverBackedUp = join(s.data, 'logs/late.log');
  writeFileSync(neverBackedUp, 'written after the backup');
  utimesSync(neverBackedUp, old, old);
  const dry = await run('l2backup', ['cleanup-logs', '--dry-run'], s.env);
  expect(dry.stdout).toMatch(/would delete 1 log file/);
  expect(existsSync(backedUp)).toBe(true);
  const res = await run('l2backup', ['cleanup-logs'], s.env);
  expect(res.exitCode).toBe(0);
  expect(existsSync(backedUp)).toBe(false);
  expect(existsSync(changedAfter)).toBe(true);
  expect(existsSync(neverBackedUp)).toBe(true);
  expect(existsSync(join(s.data, 'logs/2025/10/fills-3.log'))).toBe(true);
});

test('symlinks are kept as links, fifos are skipped with a note, excludes apply', async () => {
  const s = setup({ BACKUP_EXCLUDE: '**/*.tmp,artifacts/**' });
  await execa('mkfifo', [join(s.data, 'models/pipe')]);
  writeFileSync(join(s.data, 'models/scratch.tmp'), 'x');
  symlinkOutside(s.data);
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/models: pipe is a fifo; skipped/);
  const [id] = snapshots(s.root);
  expect(lstatSync(join(s.root, id!, 'models/outside')).isSymbolicLink()).toBe(true);
  expect(existsSync(join(s.root, id!, 'models/scratch.tmp'))).toBe(false);
  expect(existsSync(join(s.root, id!, 'models/artifacts/scaler.pkl'))).toBe(false);
});

function symlinkOutside(data: string): void {
  // A link out of the source: stored as a link, never followed.
  symlinkSync('/etc', join(data, 'models/outside'));
}

test('two runs at once: one works, the other exits 75 naming the holder; a dead holder is taken over', async () => {
  const s = setup();
  const lock = join(s.root, '.l2/locks/backup.lock');
  mkdirSync(join(s.root, '.l2/locks'), { recursive: true });
  const holder = execa('sleep', ['30']);
  writeFileSync(lock, JSON.stringify({ pid: holder.pid, host: hostname(), startedAt: new Date().toISOString(), command: 'l2backup nightly', token: 'abc' }));
  const busy = await run('l2backup', ['nightly'], s.env);
  expect(busy.exitCode).toBe(75);
  expect(busy.stderr).toMatch(new RegExp(`another run holds the lock .*pid ${holder.pid}`));
  holder.kill();
  await holder.catch(() => {});
  const after = await run('l2backup', ['nightly'], s.env);
  expect(after.exitCode).toBe(0);
  expect(after.stderr).toMatch(/took over a stale lock .*is no longer running/);
  expect(existsSync(lock)).toBe(false);

  const both = await Promise.all([run('l2backup', ['snapshot'], s.env), run('l2backup', ['snapshot'], s.env)]);
  const codes = both.map((r) => r.exitCode).sort();
  expect([[0, 0], [0, 75]]).toContainEqual(codes);
});

test('export writes a tar.gz that unpacks to the snapshot', async () => {
  const s = setup();
  await run('l2backup', ['nightly'], s.env);
  const [id] = snapshots(s.root);
  const file = join(s.dir, 'snap.tar.gz');
  const res = await run('l2backup', ['export', id!, '-o', file, '--only', 'models,reports'], s.env);
  expect(res.exitCode).toBe(0);
  const out = join(s.dir, 'unpacked');
  mkdirSync(out);
  expect((await execa('tar', ['-xzf', file, '-C', out])).exitCode).toBe(0);
  expect((await sh(`diff -r ${join(s.data, 'models')} ${join(out, id!, 'models')}`)).exitCode).toBe(0);
  expect(existsSync(join(out, id!, 'logs'))).toBe(false);
});

test('SIGTERM mid-run (the container stopping): stops cleanly, lock released, nothing partial visible', async () => {
  const s = setup();
  for (let i = 0; i < 8; i++) writeFileSync(join(s.data, `models/big-${i}.bin`), Buffer.alloc(64 * 1024 * 1024, i));
  const child = tracked(execa('node', [join(import.meta.dirname, '../../bin/l2backup.js'), 'nightly'], { env: s.env, extendEnv: false, reject: false, all: true }));
  const lock = join(s.root, '.l2/locks/backup.lock');
  // Mid-run: the lock is held and the snapshot folder is being filled. (No timing asserted:
  // the test's own timeout bounds how long the stop may take.)
  await waitFor('the run to take the lock and start its snapshot', () => existsSync(lock) && readdirSync(s.root).some((n) => n.startsWith('.tmp-')));
  child.kill('SIGTERM');
  const res = await child;
  expect(res.exitCode).toBe(1);
  expect(res.all).toMatch(/received SIGTERM: stopping cleanly/);
  expect(existsSync(lock)).toBe(false);
  expect(snapshots(s.root)).toEqual([]);
  expect(readdirSync(s.root).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  const next = await run('l2backup', ['nightly'], s.env);
  expect(next.exitCode).toBe(0);
}, 300_000);
