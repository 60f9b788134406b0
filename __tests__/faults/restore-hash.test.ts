/**
 * Restore checks every file's sha256 against its own manifest entry, whichever thread copies it
 * (issue 14: local restore copies and hashes in worker threads). A hash that is skipped, or
 * compared against another file's entry (a result matched to the wrong job), shows here: one
 * damaged stored file among hundreds, small or large, must fail the restore for exactly that
 * file, leave it as it was, and restore every other file byte-exact.
 */
import { readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { treeBytes } from '../helpers/snap.js';

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Hundreds of small files in several folders (more than any batch), and large ones (read in chunks). */
async function setup() {
  const sb = sandbox();
  made.push(sb.dir);
  const data = join(sb.dir, 'data');
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(data, `logs/d${d}`), { recursive: true });
    for (let i = 0; i < 120; i++) writeFileSync(join(data, `logs/d${d}/f${i}.log`), randomBytes(100 + ((i * 37) % 900)));
  }
  mkdirSync(join(data, 'models'), { recursive: true });
  for (let m = 0; m < 3; m++) writeFileSync(join(data, `models/m${m}.bin`), randomBytes((3 << 20) + m * 4099));
  const env = { ...sb.env, BACKUP_SOURCES: `logs=${join(data, 'logs')},models=${join(data, 'models')}` };
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const snap = join(sb.root, snapshots(sb.root)[0]!);
  return { ...sb, data, env, snap };
}

/** Flips one byte of a stored file in place (same size, same mtime: only the hash can tell). */
function damage(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at] = bytes[at]! ^ 0x40;
  writeFileSync(file, bytes);
}

const mismatchLines = (stderr: string) => stderr.split('\n').filter((l) => l.includes('content does not match the manifest'));

function temps(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => p.split('/').pop()!.startsWith('.l2restore-'));
}

test.each([
  ['a small file', ['logs/d2/f57.log'], 10],
  ['a large file (read in chunks)', ['models/m1.bin'], (2 << 20) + 5],
  ['two files side by side (a result matched to the wrong file shows)', ['logs/d0/f0.log', 'logs/d0/f1.log'], 0],
])('restore --target with %s damaged in the snapshot: exit 1, exactly it reported and left out, every other file byte-exact', async (_what, bad, at) => {
  const s = await setup();
  for (const f of bad) damage(join(s.snap, f), at);
  const target = join(s.dir, 'target');
  const res = await run('l2backup', ['restore', 'latest', '--target', target, '--no-pre-restore'], s.env);
  expect(res.exitCode).toBe(1);
  const lines = mismatchLines(res.stderr);
  expect(lines).toHaveLength(bad.length);
  for (const f of bad) expect(lines.some((l) => l.includes(`${f}: content does not match the manifest`))).toBe(true);
  expect(res.stderr).toMatch(new RegExp(`${bad.length} file\\(s\\) did not match the manifest`));
  expect(res.stderr).toMatch(/ALERT l2backup: \[error\] restore incomplete/);
  expect(res.stderr).not.toMatch(/\n\s+at /);
  // Everything else restored byte-exact; the damaged files are not there at all, nor any temp file.
  for (const src of ['logs', 'models']) {
    const want = treeBytes(join(s.data, src));
    const got = treeBytes(join(target, src));
    for (const f of bad.filter((b) => b.startsWith(`${src}/`))) {
      const rel = f.slice(src.length);
      expect(got.has(rel)).toBe(false);
      want.delete(rel);
    }
    expect(got).toEqual(want);
  }
  expect(temps(target)).toEqual([]);
});

test('in place: a damaged stored file leaves the live file as it was; the other files are put back', async () => {
  const s = await setup();
  damage(join(s.snap, 'logs/d3/f119.log'), 3);
  writeFileSync(join(s.data, 'logs/d3/f119.log'), 'live, newer than the snapshot\n');
  const good = readFileSync(join(s.data, 'logs/d1/f5.log'));
  writeFileSync(join(s.data, 'logs/d1/f5.log'), 'overwritten by mistake\n');
  const res = await run('l2backup', ['restore', 'latest', '--only', 'logs', '--no-pre-restore'], s.env);
  expect(res.exitCode).toBe(1);
  expect(mismatchLines(res.stderr)).toEqual([expect.stringContaining('logs/d3/f119.log: content does not match the manifest')]);
  expect(readFileSync(join(s.data, 'logs/d3/f119.log'), 'utf8')).toBe('live, newer than the snapshot\n');
  expect(readFileSync(join(s.data, 'logs/d1/f5.log'))).toEqual(good);
  expect(temps(join(s.data, 'logs'))).toEqual([]);
  expect(existsSync(join(s.data, 'logs/d3/f118.log'))).toBe(true);
});
