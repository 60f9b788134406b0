/**
 * A large file of a local snapshot, uploaded in parts read from the file by range (issue 14):
 * no part is ever held whole in memory, only a stream's few chunks.
 *
 * The bytes sent must be the bytes the manifest describes, though the parts go up in parallel
 * and out of order. So the file is read twice: first in order, for its sha256 (checked against
 * the manifest) and the sha256 of each part's range; then each part is hashed again as it is
 * sent and must match its first hash. Equal part hashes tie the bytes sent to the bytes
 * checked: a file changed in between fails its part, and the multipart upload is aborted.
 * (rclone reads a large file twice too, for its MD5, before a multipart upload.)
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { promises as fs } from 'node:fs';
import { CHUNK, newHash } from './hash.js';

export interface PartRange {
  /** 1-based, as S3 numbers parts */
  n: number;
  start: number;
  /** exclusive */
  end: number;
}

/** The parts of a file of `size` bytes, each `partBytes` but the last. */
export function partRanges(size: number, partBytes: number): PartRange[] {
  const count = Math.max(1, Math.ceil(size / partBytes));
  return Array.from({ length: count }, (_, i) => ({ n: i + 1, start: i * partBytes, end: Math.min(size, (i + 1) * partBytes) }));
}

/**
 * Reads the file in order once: its size and sha256, and the sha256 of each part's range (with
 * `md5`, also each range's MD5, base64, for the Content-MD5 the server checks the part against:
 * the only check of the bytes in transit when the SDK sends no checksum of its own).
 * One reused buffer (positional reads: the descriptor's offset is untouched).
 */
export async function hashParts(fh: fs.FileHandle, ranges: PartRange[], md5 = false): Promise<{ size: number; sha256: string; parts: string[]; md5s: string[] }> {
  const whole = newHash();
  const parts: string[] = [];
  const md5s: string[] = [];
  const buf = Buffer.allocUnsafe(CHUNK);
  let pos = 0;
  for (const r of ranges) {
    const part = newHash();
    const partMd5 = md5 ? createHash('md5') : undefined;
    while (pos < r.end) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, r.end - pos), pos);
      if (bytesRead === 0) break;
      const bytes = buf.subarray(0, bytesRead);
      whole.update(bytes);
      part.update(bytes);
      partMd5?.update(bytes);
      pos += bytesRead;
    }
    parts.push(part.digest('hex'));
    if (partMd5) md5s.push(partMd5.digest('base64'));
  }
  // Anything past the last range (the file grew) still counts against the whole hash and size.
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    whole.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return { size: pos, sha256: whole.digest('hex'), parts, md5s };
}

/**
 * A part's bytes, read from its range of the file as the request takes them (positional reads,
 * `chunk` bytes at a time), counted and hashed: the stream ends only when they are the
 * `expected` ones, and fails with `mismatch()` otherwise (or `unreadable(err)` on a read error).
 */
export function partReader(fh: fs.FileHandle, range: PartRange, expectedSha256: string, chunk: number, mismatch: () => Error, unreadable: (err: unknown) => Error): Readable {
  const hash = newHash();
  let pos = range.start;
  return new Readable({
    highWaterMark: chunk,
    read() {
      const want = Math.min(chunk, range.end - pos);
      if (want <= 0) {
        if (hash.digest('hex') === expectedSha256) this.push(null);
        else this.destroy(mismatch());
        return;
      }
      const buf = Buffer.allocUnsafe(want);
      fh.read(buf, 0, want, pos).then(
        ({ bytesRead }) => {
          // The file shrank under us: the bytes sent cannot be the ones checked.
          if (bytesRead === 0) return void this.destroy(mismatch());
          const bytes = buf.subarray(0, bytesRead);
          hash.update(bytes);
          pos += bytesRead;
          this.push(bytes);
        },
        (err: unknown) => this.destroy(unreadable(err)),
      );
    },
  });
}
