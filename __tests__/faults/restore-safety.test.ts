/**
 * Restore, export, verify (issue 9, section 4): never outside the target, clean swaps, no
 * leftovers that later backups pick up, the lock held while a snapshot is read.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync, lstatSync, symlinkSync, rmSync, readdirSync, chmodSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { fileList, holdBackupLock, manifest } from '../helpers/snap.js';

const STACK = /\n\s+at .*:\d+:\d+/;

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function tracked() {
  const sb = sandbox();
  made.push(sb.dir);
  return sb;
}

async function setup(extra: Record<string, string> = {}) {
  const sb = tracked();
  const { data, sources } = makeTree(sb.dir);
  mkdirSync(join(data, 'models/artifacts/sub'));
  writeFileSync(join(data, 'models/artifacts/sub/w.bin'), 'weights');
  const env = { ...sb.env, BACKUP_SOURCES: sources, ...extra };
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  return { ...sb, data, env, id: snapshots(sb.root)[0]! };
}

test('restore never creates, changes or chmods anything outside the target through a symlinked folder or file', async () => {
  const s = await setup();
  const outside = join(s.dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'victim.pkl'), 'do not touch');
  chmodSync(outside, 0o751);
  utimesSync(outside, 1_000_000, 1_000_000);
  const before = statSync(outside);
  // In place: the live models/artifacts is now a link out of the source, model.bin a link to a file outside.
  rmSync(join(s.data, 'models/artifacts'), { recursive: true });
  symlinkSync(outside, join(s.data, 'models/artifacts'));
  rmSync(join(s.data, 'models/model.bin'));
  symlinkSync(join(outside, 'victim.pkl'), join(s.data, 'models/model.bin'));
  const res = await run('l2backup', ['restore', s.id, '--only', 'models', '--no-pre-restore'], s.env);
  expect(res.stderr).not.toMatch(STACK);
  expect(res.exitCode).toBe(0);
  expect(readdirSync(outside)).toEqual(['victim.pkl']);
  expect(readFileSync(join(outside, 'victim.pkl'), 'utf8')).toBe('do not touch');
  const after = statSync(outside);
  expect([after.mode, after.mtimeMs]).toEqual([before.mode, before.mtimeMs]);
  expect(lstatSync(join(s.data, 'models/artifacts')).isDirectory()).toBe(true);
  expect(readFileSync(join(s.data, 'models/artifacts/sub/w.bin'), 'utf8')).toBe('weights');
  expect(lstatSync(join(s.data, 'models/model.bin')).isFile()).toBe(true);
});

test('a folder where the snapshot has a symlink (and a file where it has a folder) is replaced cleanly', async () => {
  const s = await setup();
  rmSync(join(s.data, 'models/current'));
  mkdirSync(join(s.data, 'models/current'));
  writeFileSync(join(s.data, 'models/current/x'), 'x');
  rmSync(join(s.data, 'models/artifacts'), { recursive: true });
  writeFileSync(join(s.data, 'models/artifacts'), 'a file where a folder was');
  const res = await run('l2backup', ['restore', s.id, '--only', 'models', '--no-pre-restore'], s.env);
  expect(res.stderr).not.toMatch(STACK);
  expect(res.exitCode).toBe(0);
  expect(lstatSync(join(s.data, 'models/current')).isSymbolicLink()).toBe(true);
  expect(readFileSync(join(s.data, 'models/artifacts/sub/w.bin'), 'utf8')).toBe('weights');
});

test('a killed in-place restore leaves no temp file that a later backup picks up', async () => {
  const s = await setup();
  writeFileSync(join(s.data, 'models/huge.bin'), Buffer.alloc(128 * 1024 * 1024, 1));
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const latest = snapshots(s.root).at(-1)!;
  const models = join(s.data, 'models');
  const hasTemp = () => readdirSync(models).some((n) => n.startsWith('.l2restore-'));
  // Kill the restore while a temp file is in the live tree. The copy can finish between seeing
  // the temp file and the kill (a fast disk, or a busy machine's scheduling), so the restore is
  // frozen first, the temp file checked again, and the whole try repeated until it is caught.
  for (let attempt = 0; attempt < 20 && !hasTemp(); attempt++) {
    const restore = execa('node', [bin('l2backup'), 'restore', latest, '--only', 'models', '--no-pre-restore'], { env: s.env, extendEnv: false, reject: false });
    for (;;) {
      if (hasTemp()) {
        restore.kill('SIGSTOP');
        break;
      }
      if (restore.exitCode !== null && restore.exitCode !== undefined) break;
      await new Promise((r) => setImmediate(r));
    }
    restore.kill('SIGKILL');
    await restore;
  }
  expect(readdirSync(models).some((n) => n.startsWith('.l2restore-'))).toBe(true);
  const res = await run('l2backup', ['snapshot'], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/leftover of an interrupted restore/);
  const newest = snapshots(s.root).at(-1)!;
  expect(fileList(join(s.root, newest)).some((e) => e.p.includes('.l2restore-'))).toBe(false);
  expect(readdirSync(join(s.root, newest, 'models')).some((n) => n.startsWith('.l2restore-'))).toBe(false);
});

test("'restore latest' works when configs is not one of the sources", async () => {
  const sb = tracked();
  const { data } = makeTree(sb.dir);
  const env = { ...sb.env, BACKUP_SOURCES: `models=${join(data, 'models')},reports=${join(data, 'reports')}` };
  writeFileSync(sb.envFile, 'MODE=paper\n');
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const target = join(sb.dir, 'restored');
  const res = await run('l2backup', ['restore', 'latest', '--target', target], env);
  expect(res.stderr).not.toMatch(STACK);
  expect(res.exitCode).toBe(0);
  expect(readFileSync(join(target, 'reports/daily.csv'), 'utf8')).toMatch(/pnl/);
  const inPlace = await run('l2backup', ['restore', 'latest', '--no-pre-restore'], env);
  expect(inPlace.exitCode).toBe(0);
});

test('restore: a --target that resolves into BACKUP_ROOT, and empty --target/--only, are usage errors (exit 2), nothing written', async () => {
  const s = await setup();
  symlinkSync(s.root, join(s.dir, 'via-link'));
  const cases: [string[], RegExp][] = [
    [['restore', s.id, '--target', join(s.dir, 'via-link', 'x')], /overlaps BACKUP_ROOT/],
    [['restore', s.id, '--target', join(s.data, '..', 'backups')], /overlaps BACKUP_ROOT/],
    [['restore', s.id, '--target', ''], /--target is empty/],
    [['restore', s.id, '--only', ''], /--only is empty/],
    [['restore', s.id, '--only', ',', '--target', join(s.dir, 't')], /--only is empty/],
  ];
  const before = readFileSync(join(s.data, 'reports/daily.csv'), 'utf8');
  writeFileSync(join(s.data, 'reports/daily.csv'), 'changed since the snapshot');
  for (const [args, msg] of cases) {
    const res = await run('l2backup', args, s.env);
    expect([args, res.exitCode]).toEqual([args, 2]);
    expect(res.stderr).toMatch(msg);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
  }
  expect(readFileSync(join(s.data, 'reports/daily.csv'), 'utf8')).toBe('changed since the snapshot');
  expect(existsSync(join(s.root, 'x'))).toBe(false);
  expect(snapshots(s.root)).toEqual([s.id]);
  void before;
});

test('restored files keep their full-precision mtimes, and the nightly after a restore links them instead of copying', async () => {
  const s = await setup();
  const file = join(s.data, 'models/model.bin');
  const original = statSync(file, { bigint: true }).mtimeNs;
  expect(original % 1_000_000n).not.toBe(0n);
  rmSync(join(s.data, 'models'), { recursive: true });
  expect((await run('l2backup', ['restore', s.id, '--only', 'models', '--no-pre-restore'], s.env)).exitCode).toBe(0);
  const restored = statSync(file, { bigint: true }).mtimeNs;
  const diff = restored > original ? restored - original : original - restored;
  expect(diff).toBeLessThan(2000n); // a double's precision cut to whole microseconds (Node's utimes), not whole milliseconds
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  // A nightly's id names its minute, so it may sort before the setup snapshot of the same minute.
  const m = manifest(join(s.root, snapshots(s.root).find((id) => id !== s.id)!));
  expect([m.totals.copiedFiles, m.warnings]).toEqual([0, []]);
});

describe('export and verify --all hold the backup lock, so nothing is pruned under them', () => {
  test.each([['export'], ['verify --all']])('%s waits for no one: exit 75 while the lock is held', async (cmd) => {
    const s = await setup();
    const holder = await holdBackupLock(s.root);
    try {
      const args = cmd === 'export' ? ['export', s.id, '-o', join(s.dir, 'out.tar.gz')] : ['verify', '--all'];
      const res = await run('l2backup', args, s.env);
      expect(res.exitCode).toBe(75);
      expect(existsSync(join(s.dir, 'out.tar.gz'))).toBe(false);
    } finally {
      await holder.kill();
    }
  });
});

test('export -o into BACKUP_ROOT, into a missing folder, or "": a one-line error, exit 2; a failed export removes its temp file', async () => {
  const s = await setup();
  symlinkSync(s.root, join(s.dir, 'via-link'));
  for (const [o, msg] of [
    [join(s.root, 'x.tar.gz'), /inside BACKUP_ROOT/],
    [join(s.dir, 'via-link', 'x.tar.gz'), /inside BACKUP_ROOT/],
    [join(s.dir, 'no/such/folder/x.tar.gz'), /does not exist/],
    ['', /-o is empty/],
  ] as const) {
    const res = await run('l2backup', ['export', s.id, '-o', o], s.env);
    expect([o, res.exitCode]).toEqual([o, 2]);
    expect(res.stderr).toMatch(msg);
    expect(res.stderr).not.toMatch(STACK);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
  }
  expect(readdirSync(s.root).filter((n) => n.endsWith('.tar.gz') || n.includes('.tmp-'))).toEqual([]);
  // A snapshot file gone: the export fails and leaves nothing behind.
  rmSync(join(s.root, s.id, 'models/model.bin'));
  const out = join(s.dir, 'exports');
  mkdirSync(out);
  const res = await run('l2backup', ['export', s.id, '-o', join(out, 'snap.tar.gz')], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).not.toMatch(STACK);
  expect(readdirSync(out)).toEqual([]);
});

test('restore takes the lock before it resolves what to restore: with the lock held, even "latest" is not looked up (exit 75)', async () => {
  const sb = tracked();
  const { sources } = makeTree(sb.dir);
  const holder = await holdBackupLock(sb.root);
  try {
    // No snapshot exists: resolving first would answer "no complete snapshot" (exit 2).
    const res = await run('l2backup', ['restore', 'latest', '--target', join(sb.dir, 't')], { ...sb.env, BACKUP_SOURCES: sources });
    expect(res.exitCode).toBe(75);
    expect(existsSync(join(sb.dir, 't'))).toBe(false);
  } finally {
    await holder.kill();
  }
});
