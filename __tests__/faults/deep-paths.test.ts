/**
 * Paths longer than PATH_MAX (issue 9, "any name Linux allows"): every name in the tree is
 * legal (< 255 bytes), but the whole path is over 4096 bytes, so nothing may open a file by its
 * whole path. A snapshot of such a tree is verified, exported, restored (into a fresh target
 * and into the live tree) and pruned away by the built l2backup. Files here are made and read
 * with bash `cd` (relative, one folder at a time) and GNU tar/find (openat), as an operator's
 * tools would.
 */
import { mkdirSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { ageSnapshot, idDaysAgo, snapshots } from '../helpers/tree.js';

/** --json is NDJSON: the report is in the last (summary) line. */
const summary = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

const LONG = 280_000;
const made: string[] = [];
afterAll(async () => {
  // GNU rm walks with openat; Node's rm (the shared teardown) cannot remove a tree this deep.
  for (const d of made) await execa('rm', ['-rf', d]);
});

const LEVEL = 'q'.repeat(200);
const LEVELS = 24; // 24 x 201 bytes: about 4.8 KB below the source, whatever the temp folder's name
const deepDirs = Array.from({ length: LEVELS }, (_, i) => `${String(i).padStart(2, '0')}${LEVEL}`);

/** Runs a bash script with the deep folder as its working directory (made with `mkdir`, reached by relative `cd`s). */
async function inDeep(base: string, script: string): Promise<string> {
  const walkDown = deepDirs.map((d) => `mkdir -p ${d} && cd ${d}`).join(' && ');
  const res = await execa('bash', ['-c', `set -e; cd "$1"; ${walkDown}; ${script}`, 'bash', base]);
  return res.stdout;
}

/** Names, types, modes, symlink targets and bytes of a tree, as GNU tar sees it (openat, any depth); times are left out (a symlink's own mtime is not kept). */
async function treeDigest(dir: string): Promise<string> {
  const res = await execa('bash', ['-c', 'set -o pipefail; tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf - . | sha256sum', 'bash', dir]);
  return res.stdout.split(' ')[0]!;
}

test('a tree deeper than PATH_MAX is backed up, verified, exported, restored (fresh target and live tree) and pruned', async () => {
  const sb = sandbox();
  made.push(sb.dir);
  const models = join(sb.dir, 'data/models');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'model.bin'), 'weights');
  await inDeep(models, 'printf deep-weights > deep.bin; ln -s deep.bin current; mkdir leaf; printf x > leaf/x; chmod 0640 deep.bin');
  expect((await execa('bash', ['-c', 'find "$1" -name deep.bin -printf "%d %p\\n"', 'bash', models])).stdout.length).toBeGreaterThan(4096);
  const env = { ...sb.env, BACKUP_SOURCES: `models=${models}` };

  const nightly = await run('l2backup', ['nightly'], env);
  expect(nightly.all).not.toMatch(/ENAMETOOLONG/);
  expect(nightly.exitCode).toBe(0);
  const [id] = snapshots(sb.root);
  expect(await treeDigest(join(sb.root, id!, 'models'))).toBe(await treeDigest(models));

  const verify = await run('l2backup', ['verify', id!, '--json'], env);
  expect(verify.all).not.toMatch(/ENAMETOOLONG/);
  expect(verify.exitCode).toBe(0);
  expect(summary(verify.stdout).report).toMatchObject({ ok: true, missing: [], changed: [], extra: [] });
  // A deep file damaged in the snapshot is reported as changed: verify really reads it.
  await inDeep(join(sb.root, id!, 'models'), 'chmod u+w deep.bin; printf DEEP-weights > deep.bin');
  const damaged = await run('l2backup', ['verify', id!, '--json'], env);
  expect(damaged.exitCode).toBe(1);
  expect(summary(damaged.stdout).report.changed).toEqual([expect.stringMatching(/\/deep\.bin$/)]);
  await inDeep(join(sb.root, id!, 'models'), 'printf deep-weights > deep.bin');

  const archive = join(sb.dir, 'snap.tar.gz');
  const exported = await run('l2backup', ['export', id!, '-o', archive], env);
  expect(exported.all).not.toMatch(/ENAMETOOLONG/);
  expect(exported.exitCode).toBe(0);
  // GNU tar cannot extract a path this long (mkdirat with the whole name), so members are read to stdout.
  const deepName = `${id}/models/${deepDirs.join('/')}`;
  const member = async (name: string) => (await execa('tar', ['-xzOf', archive, `${deepName}/${name}`])).stdout;
  expect(await member('deep.bin')).toBe('deep-weights');
  expect(await member('leaf/x')).toBe('x');
  expect((await execa('tar', ['-tvzf', archive, `${deepName}/current`])).stdout).toMatch(/^l.* -> deep\.bin$/);

  const target = join(sb.dir, 'target');
  const toTarget = await run('l2backup', ['restore', id!, '--target', target], env);
  expect(toTarget.all).not.toMatch(/ENAMETOOLONG/);
  expect(toTarget.exitCode).toBe(0);
  expect(await treeDigest(join(target, 'models'))).toBe(await treeDigest(models));

  // In place: the deep file changed and an extra deep folder is replaced by the snapshot's symlink.
  await inDeep(models, 'printf changed > deep.bin; rm current; mkdir -p current/sub; printf y > current/sub/y');
  const inPlace = await run('l2backup', ['restore', id!], env);
  expect(inPlace.all).not.toMatch(/ENAMETOOLONG/);
  expect(inPlace.exitCode).toBe(0);
  expect(await inDeep(models, 'cat deep.bin; readlink current')).toBe('deep-weightsdeep.bin');
  expect(await treeDigest(models)).toBe(await treeDigest(join(target, 'models')));

  // Pruned away: ten days old, with a newer complete snapshot beside it.
  const old = idDaysAgo(10);
  ageSnapshot(sb.root, id!, old);
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const prune = await run('l2backup', ['prune'], env);
  expect(prune.all).not.toMatch(/ENAMETOOLONG/);
  expect(prune.exitCode).toBe(0);
  expect(existsSync(join(sb.root, old))).toBe(false);
  expect(readdirSync(sb.root).filter((n) => n.startsWith('.trash-') || n.startsWith('.tmp-'))).toEqual([]);
  expect(snapshots(sb.root)).toHaveLength(1);
}, LONG);
