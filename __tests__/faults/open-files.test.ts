/**
 * Out of file descriptors: local restore keeps up to a few hundred files in flight across its
 * copy threads, each with its folder open. Under a low open-file limit (a container's nofile
 * ulimit) that is EMFILE. It must be one line naming the limit and the fix, exit 1, never
 * "internal error", and leave no temp file behind.
 */
import { mkdirSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Every name under `dir`, recursively. */
function names(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

test('a restore that runs out of file descriptors says so in one line, exit 1, and leaves no temp file', async () => {
  const sb = sandbox();
  made.push(sb.dir);
  const logs = join(sb.dir, 'logs');
  for (let d = 0; d < 300; d++) {
    mkdirSync(join(logs, `d${d}`), { recursive: true });
    for (let i = 0; i < 2; i++) writeFileSync(join(logs, `d${d}/f${i}.log`), `${d} ${i}\n`);
  }
  const env = { ...sb.env, BACKUP_SOURCES: `logs=${logs}` };
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const target = join(sb.dir, 'target');
  mkdirSync(target);
  // (40: a restore sizes its files in flight to the limit, and restores this tree whole at 60)
  const res = await execa('prlimit', ['--nofile=40:40', 'node', bin('l2backup'), 'restore', 'latest', '--target', target, '--no-pre-restore'], {
    env,
    extendEnv: false,
    reject: false,
    all: true,
    timeout: 280_000,
  });
  const all = String(res.all);
  expect(res.exitCode).toBe(1);
  expect(all).not.toMatch(/internal error| {4}at /);
  expect(all).toMatch(/EMFILE/);
  expect(all).toMatch(/ulimit -n/);
  expect(names(target).filter((n) => n.includes('.l2restore-'))).toEqual([]);
}, 300_000);
