/**
 * Remote object names: S3 keys are UTF-8 text, file names are bytes. Every name must get a key
 * of its own (two names never share an object), and a UTF-8 name keeps its own text as its key
 * so a plain `aws s3 sync` restores it under its real name.
 */
import fc from 'fast-check';
import { encodeName, remoteName } from '../../src/backup/manifest.js';

const nameBytes = fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a.map((b) => (b === 0 || b === 0x2f ? 0x61 : b))));

test('every name gets its own key, and UTF-8 names keep their text', () => {
  fc.assert(
    fc.property(fc.uniqueArray(nameBytes, { minLength: 2, maxLength: 40, selector: (b) => b.toString('latin1') }), (names) => {
      const keys = names.map((raw) => remoteName(encodeName(raw)));
      expect(new Set(keys).size).toBe(names.length);
      for (const [i, raw] of names.entries()) {
        const enc = encodeName(raw);
        if (enc.pb === undefined) expect(keys[i]).toBe(raw.toString('utf8'));
        // A key is valid UTF-8 text (what S3 stores).
        expect(Buffer.from(keys[i]!, 'utf8').toString('utf8')).toBe(keys[i]);
      }
    }),
    { numRuns: 300 },
  );
});

test('names differing only in non-UTF-8 bytes get different keys', () => {
  expect(remoteName(encodeName(Buffer.from([0x61, 0xff])))).not.toBe(remoteName(encodeName(Buffer.from([0x61, 0xfe]))));
  expect(remoteName(encodeName(Buffer.from([0x61, 0xff])))).toMatch(/^a%FF~l2raw-[0-9a-f]{12}$/);
});
