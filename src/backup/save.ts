/**
 * The save stage: stores one regular file into the snapshot being built. The source is opened
 * without following a symlink and checked on the open descriptor (fstat): a file swapped for a
 * symlink, fifo or folder meanwhile is refused ("changed type"), as restic does. Bytes are
 * copied and hashed from that descriptor in one pass, holes in sparse files stay holes, and a
 * file that changes while it is read is read again (up to 3 times). The copy is written through
 * one descriptor that stays open, so a read-only (0444) source is retried as any other.
 */
import { constants as C, openSync, closeSync, fstatSync, readSync, writeSync, ftruncateSync, fchmodSync, futimesSync, read, write, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { CHUNK, newHash, hashFdSync, sha256 } from './hash.js';

const readAsync = promisify(read);
const writeAsync = promisify(write);
const SMALL_FILE = 1 << 20;
const SMALL_FILE_N = BigInt(SMALL_FILE);
const ATTEMPTS = 3;
/** Blocks of zeros this large and aligned are left as holes in a sparse source's copy. */
const HOLE = 4096;

export type SaveResult =
  | { kind: 'copied'; sha256: string; size: number; st: BigIntStats; changed: boolean; attempts: number }
  | { kind: 'same-as-base'; st: BigIntStats }
  | { kind: 'changed-type'; st: BigIntStats };

/** What the decide stage asks to compare against before copying: bytes equal to this may be linked. */
export interface Candidate {
  sha256: string;
  size: number;
  mode: number;
}

/** Seconds for futimes from a ns timestamp, as precisely as a double allows. */
export function nsToSeconds(ns: bigint): number {
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

export function sameVersion(a: BigIntStats, b: BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;
}

function allZero(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Copies `src` (an open descriptor) into `out` from offset 0, hashing the same bytes. */
async function copyOnce(src: number, out: number, expected: number, sparse: boolean, buf: Buffer, fresh: boolean, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = newHash();
  let pos = 0;
  if (!fresh) ftruncateSync(out, 0); // a retry starts over; a new file is empty already
  const small = expected < SMALL_FILE;
  for (;;) {
    signal?.throwIfAborted(); // a stopping container must not wait for a large copy to finish
    const n = small ? readSync(src, buf, 0, buf.length, pos) : (await readAsync(src, buf, 0, buf.length, pos)).bytesRead;
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    if (sparse) {
      // Write only the blocks that hold data; the rest stay holes (the size is set below).
      for (let off = 0; off < n; off += HOLE) {
        const end = Math.min(off + HOLE, n);
        if (!allZero(buf, off, end)) writeSync(out, buf, off, end - off, pos + off);
      }
    } else if (small) {
      writeSync(out, buf, 0, n, pos);
      // A small file's buffer is larger than the file: a short read is its end (a file that
      // grows meanwhile fails the fstat check after the copy and is read again).
      if (n < buf.length) {
        pos += n;
        break;
      }
    } else {
      let done = 0;
      while (done < n) done += (await writeAsync(out, buf, done, n - done, pos + done)).bytesWritten;
    }
    pos += n;
  }
  if (sparse) ftruncateSync(out, pos);
  return { sha256: hash.digest('hex'), size: pos };
}

/** One buffer for every small file: a small file is copied synchronously, start to end, so none shares it. */
let smallBuf: Buffer | undefined;

/**
 * Copies a small file (smaller than SMALL_FILE when it was opened) synchronously: one read
 * usually holds it whole, hashed in one shot. A file that grows past the buffer meanwhile is
 * read on in chunks (and found changed by the fstat after the copy).
 */
function copySmall(src: number, out: number, fresh: boolean): { sha256: string; size: number } {
  const buf = (smallBuf ??= Buffer.allocUnsafeSlow(SMALL_FILE));
  if (!fresh) ftruncateSync(out, 0); // a retry starts over; a new file is empty already
  const first = readSync(src, buf, 0, buf.length, 0);
  if (first > 0) writeSync(out, buf, 0, first, 0);
  if (first < buf.length) return { sha256: sha256(buf.subarray(0, first)), size: first };
  const hash = newHash().update(buf);
  let pos = first;
  for (;;) {
    const n = readSync(src, buf, 0, buf.length, pos);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    writeSync(out, buf, 0, n, pos);
    pos += n;
  }
  return { sha256: hash.digest('hex'), size: pos };
}

/**
 * Saves `abs` to `dest` (created, must not exist). With a candidate (same size and time as the
 * base copy, but a new inode or ctime), the source is hashed first and, when its bytes equal
 * the base copy's, nothing is written: 'same-as-base' (linkBase, called before any await, has
 * linked the base copy; when it cannot, the file is copied). `abs` and `dest` are used only
 * before the first await (they may be /proc/self/fd paths of the walk's open folders).
 * A small file is saved synchronously (the result, not a promise): no await per file.
 */
export function saveFile(abs: Buffer, dest: Buffer, candidate?: Candidate, signal?: AbortSignal, linkBase?: () => boolean): SaveResult | Promise<SaveResult> {
  const src = openSync(abs, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY);
  let out: number | undefined;
  let handedOn = false;
  try {
    const st = fstatSync(src, { bigint: true });
    if (!st.isFile()) return { kind: 'changed-type', st };
    const mode = Number(st.mode & 0o7777n);
    if (candidate && Number(st.size) === candidate.size && mode === candidate.mode) {
      const d = hashFdSync(src);
      const after = fstatSync(src, { bigint: true });
      // linkBase runs here, synchronously: the paths are only valid until the first await. A base copy gone bad: copy.
      if (d.sha256 === candidate.sha256 && d.size === candidate.size && sameVersion(st, after) && (linkBase?.() ?? true)) return { kind: 'same-as-base', st };
    }
    out = openSync(dest, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    if (st.size < SMALL_FILE_N) return copyAll(src, out, st, (fresh) => copySmall(src, out!, fresh));
    handedOn = true;
    return copyLarge(src, out, st, signal);
  } finally {
    if (!handedOn) {
      if (out !== undefined) closeSync(out);
      closeSync(src);
    }
  }
}

/** Copies (up to ATTEMPTS times while the source changes meanwhile), then sets mode and times on the copy. */
function copyAll(src: number, out: number, st: BigIntStats, copyOnce: (fresh: boolean) => { sha256: string; size: number }): SaveResult {
  let attempts = 0;
  let copy: { sha256: string; size: number };
  let changed: boolean;
  for (;;) {
    attempts++;
    copy = copyOnce(attempts === 1);
    const after = fstatSync(src, { bigint: true });
    changed = !sameVersion(st, after) || BigInt(copy.size) !== after.size;
    st = after;
    if (!changed || attempts >= ATTEMPTS) break;
  }
  return finishCopy(out, st, copy, changed, attempts);
}

function finishCopy(out: number, st: BigIntStats, copy: { sha256: string; size: number }, changed: boolean, attempts: number): SaveResult {
  fchmodSync(out, Number(st.mode & 0o7777n));
  futimesSync(out, nsToSeconds(st.atimeNs), nsToSeconds(st.mtimeNs));
  return { kind: 'copied', sha256: copy.sha256, size: copy.size, st, changed, attempts };
}

/** A large file: read and written asynchronously (a stopping container need not wait for it); closes both descriptors. */
async function copyLarge(src: number, out: number, st: BigIntStats, signal?: AbortSignal): Promise<SaveResult> {
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let attempts = 0;
    let copy: { sha256: string; size: number };
    let changed: boolean;
    for (;;) {
      attempts++;
      // A sparse source: fewer blocks allocated than its size needs.
      const sparse = st.blocks * 512n < st.size;
      copy = await copyOnce(src, out, Number(st.size), sparse, buf, attempts === 1, signal);
      const after = fstatSync(src, { bigint: true });
      changed = !sameVersion(st, after) || BigInt(copy.size) !== after.size;
      st = after;
      if (!changed || attempts >= ATTEMPTS) break;
    }
    return finishCopy(out, st, copy, changed, attempts);
  } finally {
    closeSync(out);
    closeSync(src);
  }
}
