/**
 * The snapshot pipeline hands small files (saved and linked synchronously) and large ones
 * (copied asynchronously) on in one order: the file list stays in walk order, every entry's
 * hash is its file's, and a nightly links exactly the unchanged files. Run against the built
 * l2backup on real files.
 */
import { mkdirSync, writeFileSync, readFileSync, readdirSync, lstatSync, symlinkSync, rmSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { fileList, manifest } from '../helpers/snap.js';

const MiB = 1 << 20;
const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Depth first, names sorted bytewise: the order the walk (and the file list) promises. */
function walkOrder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  const names = readdirSync(join(dir, rel), { encoding: 'buffer' }).sort(Buffer.compare);
  for (const n of names) {
    const r = rel === '' ? n.toString() : `${rel}/${n.toString()}`;
    out.push(r);
    if (lstatSync(join(dir, r)).isDirectory()) out.push(...walkOrder(dir, r));
  }
  return out;
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('small (synchronous) and large (asynchronous) files interleaved: list in walk order, every hash right, only unchanged files linked', async () => {
  const sb = sandbox();
  made.push(sb.dir);
  const data = join(sb.dir, 'logs');
  // 1,500 small files (more than the walk's yield and progress strides), large files between
  // them by name, files at the small/large boundary, an empty file and a symlink.
  for (let d = 0; d < 3; d++) {
    mkdirSync(join(data, `d${d}`), { recursive: true });
    for (let i = 0; i < 500; i++) writeFileSync(join(data, `d${d}`, `f${String(i).padStart(3, '0')}.log`), `line ${d} ${i}\n`);
    for (const i of [7, 250, 499]) writeFileSync(join(data, `d${d}`, `f${String(i).padStart(3, '0')}.mid`), randomBytes(2 * MiB + i));
  }
  writeFileSync(join(data, 'd1', 'edge-below'), randomBytes(MiB - 1));
  writeFileSync(join(data, 'd1', 'edge-at'), randomBytes(MiB));
  writeFileSync(join(data, 'd1', 'empty'), '');
  symlinkSync('f001.log', join(data, 'd2', 'link'));
  const env = { ...sb.env, BACKUP_SOURCES: `logs=${data}` };

  const check = (id: string) => {
    const dir = join(sb.root, id);
    const list = fileList(dir).filter((e) => e.s === 'logs');
    expect(list.map((e) => e.p)).toEqual(['', ...walkOrder(data)]);
    for (const e of list.filter((e) => e.t === 'f')) {
      expect({ p: e.p, sha256: sha(join(dir, 'logs', e.p)) }).toEqual({ p: e.p, sha256: e.sha256 });
      expect(e.sha256).toBe(sha(join(data, e.p)));
    }
    return list;
  };

  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const [first] = snapshots(sb.root);
  const files = check(first!).filter((e) => e.t === 'f').length;

  // Change small and large files next to unchanged ones.
  const changed = ['d0/f007.mid', 'd0/f008.log', 'd1/edge-at', 'd2/f499.log', 'd2/f499.mid'];
  for (const p of changed) writeFileSync(join(data, p), randomBytes(p.endsWith('.log') ? 40 : 3 * MiB));
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const [, second] = snapshots(sb.root);
  const list = check(second!);
  const t = manifest(join(sb.root, second!)).totals;
  expect(t.files).toBe(manifest(join(sb.root, first!)).totals.files); // the redacted env copy is one more
  expect(t.linkedFiles).toBe(files - changed.length);
  expect(t.copiedFiles).toBe(changed.length);
  for (const e of list.filter((e) => e.t === 'f')) {
    const same = lstatSync(join(sb.root, first!, 'logs', e.p)).ino === lstatSync(join(sb.root, second!, 'logs', e.p)).ino;
    expect({ p: e.p, linked: same }).toEqual({ p: e.p, linked: !changed.includes(e.p) });
  }
}, 900_000);
