/**
 * The decide stage streams the previous file list and merge-joins it with the walk (issue 14):
 * the two orders must agree for every name, a list that does not match its manifest is never
 * linked from, and old lists (format 1, any order) still serve as a base.
 */
import { mkdirSync, readFileSync, writeFileSync, statSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { manifest } from '../helpers/snap.js';

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Names whose byte order, '/' and non-UTF-8 bytes test the walk's order against the list's. */
const NAMES: Buffer[] = ['a-b', 'a.b', 'a/x', 'a/x-y', 'a0/z', 'A', 'b\nnl', '~', 'é', 'sp ace', 'a/b/c/d'].map((n) => Buffer.from(n));
NAMES.push(Buffer.concat([Buffer.from('raw-'), Buffer.from([0xff, 0xfe])]), Buffer.concat([Buffer.from('a/'), Buffer.from([0x80])]));

function setup() {
  const sb = sandbox();
  made.push(sb.dir);
  const src = join(sb.dir, 'data', 'logs');
  for (const n of NAMES) {
    const p = Buffer.concat([Buffer.from(src + '/'), n]);
    mkdirSync(p.subarray(0, p.lastIndexOf(0x2f)), { recursive: true });
    writeFileSync(p, `content of ${n.toString('hex')}\n`);
  }
  return { ...sb, src, env: { ...sb.env, BACKUP_SOURCES: `logs=${src}` } };
}

function rewriteList(dir: string, edit: (lines: string[]) => string[], fixHash: boolean, manifestEdit: (m: Record<string, unknown>) => void = () => {}) {
  const listPath = join(dir, '.l2-files.jsonl.gz');
  const lines = gunzipSync(readFileSync(listPath)).toString('utf8').split('\n').filter(Boolean);
  const text = edit(lines).join('\n') + '\n';
  writeFileSync(listPath, gzipSync(text));
  const mf = join(dir, '.l2-manifest.json');
  const m = JSON.parse(readFileSync(mf, 'utf8')) as Record<string, unknown>;
  if (fixHash) m.filesSha256 = createHash('sha256').update(text).digest('hex');
  manifestEdit(m);
  writeFileSync(mf, JSON.stringify(m));
}

const inode = (root: string, id: string, name: Buffer) => statSync(Buffer.concat([Buffer.from(join(root, id, 'logs') + '/'), name])).ino;

test('every unchanged file is linked whatever its name: the walk and the file list agree on the order', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [first, second] = snapshots(s.root);
  expect(manifest(join(s.root, second!)).totals.linkedFiles).toBe(NAMES.length);
  for (const n of NAMES) expect(inode(s.root, second!, n)).toBe(inode(s.root, first!, n));
}, 120_000);

test('a previous file list that does not match its manifest is never linked from: everything is copied', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  // One entry's hash altered (valid JSON, so only the manifest's sha256 of the list can tell).
  rewriteList(join(s.root, first!), (lines) => lines.map((l) => (l.includes('"p":"a-b"') ? l.replace(/"sha256":"[0-9a-f]+"/, `"sha256":"${'0'.repeat(64)}"`) : l)), false);
  const res = await run('l2backup', ['snapshot'], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/previous snapshot \S+ is unusable as a base \(its file list does not match its manifest \(damaged\)\); copying every file/);
  const second = snapshots(s.root)[1]!;
  const m = manifest(join(s.root, second)) as unknown as { base: string | null; totals: Record<string, number> };
  expect(m.base).toBeNull();
  expect(m.totals.linkedFiles).toBe(0);
  for (const n of NAMES) expect(inode(s.root, second, n)).not.toBe(inode(s.root, first!, n));
}, 120_000);

test('an old list (format 1, entries in any order) still serves as a base', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  rewriteList(join(s.root, first!), (lines) => [...lines].reverse(), true, (m) => delete m.listFormat);
  const res = await run('l2backup', ['snapshot'], s.env);
  expect(res.exitCode).toBe(0);
  const second = snapshots(s.root)[1]!;
  expect(manifest(join(s.root, second)).totals.linkedFiles).toBe(NAMES.length);
  for (const n of NAMES) expect(inode(s.root, second, n)).toBe(inode(s.root, first!, n));
}, 120_000);
