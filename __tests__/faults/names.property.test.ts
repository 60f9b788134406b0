/**
 * Any name Linux allows (a newline, bytes that are not UTF-8, a backslash, a leading dash,
 * quotes, escapes) is backed up, listed, verified and restored byte-exact: a fast-check
 * property over random names, run against the built l2backup.
 */
import { mkdirSync, writeFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { fileList, treeBytes } from '../helpers/snap.js';

const SPECIAL = [0x0a, 0x0d, 0x5c, 0x2d, 0x22, 0x27, 0x20, 0x09, 0x1b, 0x2a, 0x3f, 0x5b, 0x7b, 0x21, 0xff, 0xfe, 0xc3, 0x80, 0xe2, 0x82, 0xac, 0xed, 0xa0];
const byte = fc.oneof(fc.constantFrom(...SPECIAL), fc.integer({ min: 0x61, max: 0x7a }), fc.integer({ min: 1, max: 255 }).filter((b) => b !== 0x2f));
const name = fc
  .array(byte, { minLength: 1, maxLength: 24 })
  .map((bytes) => Buffer.from(bytes))
  .filter((b) => b.toString('latin1') !== '.' && b.toString('latin1') !== '..');
const names = fc.uniqueArray(name, { minLength: 1, maxLength: 6, selector: (b) => b.toString('latin1') });

const at = (...parts: (string | Buffer)[]) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [Buffer.from('/'), Buffer.from(p)])));

test('names with any bytes survive snapshot, file list, verify and restore byte-exact', async () => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(names, name, names, async (files, dirName, linkNames) => {
      runs++;
      const sb = sandbox();
      try {
        const src = join(sb.dir, 'models');
        mkdirSync(src);
        mkdirSync(at(src, dirName));
        for (const f of files) {
          writeFileSync(at(src, f), Buffer.concat([Buffer.from('content of '), f]));
          writeFileSync(at(src, dirName, f), f);
        }
        for (const l of linkNames) if (!files.some((f) => f.equals(l)) && !l.equals(dirName)) symlinkSync(l, at(src, l)); // a target with the same odd bytes
        const env = { ...sb.env, BACKUP_SOURCES: `models=${src}` };
        const snap = await run('l2backup', ['snapshot'], env);
        expect(snap.stderr).not.toMatch(/WARN/);
        expect(snap.exitCode).toBe(0);
        const [id] = snapshots(sb.root);
        const listed = fileList(join(sb.root, id!)).filter((e) => e.s === 'models' && e.t === 'f');
        expect(listed).toHaveLength(files.length * 2);
        expect((await run('l2backup', ['verify', id!], env)).exitCode).toBe(0);
        const target = join(sb.dir, 'restored');
        const res = await run('l2backup', ['restore', id!, '--only', 'models', '--target', target], env);
        expect(res.exitCode).toBe(0);
        expect(treeBytes(join(target, 'models'))).toEqual(treeBytes(src));
      } finally {
        rmSync(sb.dir, { recursive: true, force: true });
      }
    }),
    {
      numRuns: 8,
      // The cases named in issue 9 always run: not UTF-8, a backslash, a leading dash, a newline.
      examples: [[[Buffer.from([0x62, 0x61, 0x64, 0xff]), Buffer.from('back\\slash'), Buffer.from('-rf'), Buffer.from('new\nline')], Buffer.from([0xc3, 0x28]), [Buffer.from('--help')]]],
      seed: Number(process.env.FC_SEED ?? Date.now() % 1_000_000),
      verbose: 1,
    },
  );
  expect(runs).toBeGreaterThanOrEqual(8);
}, 600_000);
