/**
 * Attack on the snapshot pipeline and restore (issue 9 sections 1 and 4). Each test fails on
 * the code under attack (c1ce990..87672fe).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, rmSync, readdirSync, lstatSync, copyFileSync, mknodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { fileList } from '../helpers/snap.js';

const LONG = 300_000;
const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function setup(sources: string) {
  const sb = sandbox();
  made.push(sb.dir);
  return { ...sb, env: { ...sb.env, BACKUP_SOURCES: sources } };
}

test('export -o into a folder that takes no files (/proc) is one usage line naming -o', async () => {
  const sb = sandbox();
  made.push(sb.dir);
  const data = join(sb.dir, 'data/models');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'm.bin'), 'model');
  const env = { ...sb.env, BACKUP_SOURCES: `models=${data}` };
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const res = await run('l2backup', ['export', 'latest', '-o', '/proc/x.tgz'], env);
  expect(res.exitCode).toBe(2);
  const errors = res.all.split('\n').filter((l) => /ERROR|error/.test(l));
  expect(errors.length).toBe(1);
  expect(errors[0]).toContain('-o /proc/x.tgz');
});

test('export -o onto an existing device never replaces the device with the archive', async () => {
  const sb = sandbox();
  made.push(sb.dir);
  const data = join(sb.dir, 'data/models');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'm.bin'), 'model');
  const env = { ...sb.env, BACKUP_SOURCES: `models=${data}` };
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const id = snapshots(sb.root)[0]!;
  // A private device node standing in for /dev/null (the real run replaced /dev/full).
  const dev = join(sb.dir, 'null-device');
  await execa('mknod', ['-m', '666', dev, 'c', '1', '3']);
  await run('l2backup', ['export', id, '-o', dev], env);
  expect(lstatSync(dev).isCharacterDevice()).toBe(true);
});

test('BACKUP_ROOT that is a file is a configuration error (exit 2), not an internal error', async () => {
  const sb = sandbox();
  made.push(sb.dir);
  const data = join(sb.dir, 'data/models');
  mkdirSync(data, { recursive: true });
  const res = await run('l2backup', ['snapshot'], { ...sb.env, BACKUP_ROOT: sb.envFile, BACKUP_SOURCES: `models=${data}` });
  expect(res.all).not.toMatch(/internal error/);
  expect(res.exitCode).toBe(2);
});
