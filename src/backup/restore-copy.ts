/**
 * Local restore's copy stage: a stored file is copied and hashed in one read. Small files go
 * through one shared buffer synchronously (the syscalls dominate); a large file's next read
 * and previous write run in libuv's pool while the current chunk is hashed, and several large
 * files are restored at once (TaskPool, src/backup/task-pool.ts), so the disk and the hash overlap as in restic.
 */
import { constants as C, openSync, closeSync, fstatSync, readSync, writeSync, read, write } from 'node:fs';
import { promisify } from 'node:util';
import { L2Error } from '../errors.js';
import { CHUNK, newHash } from './hash.js';

const readAsync = promisify(read);
const writeAsync = promisify(write);
const SMALL = 1 << 20;
const shared = Buffer.allocUnsafe(SMALL);

/** Files restored at once: libuv's default pool has 4 threads, each large file keeps about two busy. */
export const RESTORE_PARALLEL = 4;

function writeFullSync(fd: number, buf: Buffer, n: number, pos: number): void {
  for (let done = 0; done < n; ) done += writeSync(fd, buf, done, n - done, pos + done);
}

async function writeFull(fd: number, buf: Buffer, n: number, pos: number): Promise<void> {
  for (let done = 0; done < n; ) done += (await writeAsync(fd, buf, done, n - done, pos + done)).bytesWritten;
}

/**
 * Hashes and copies an open descriptor's bytes into `out`; reads ahead and writes behind while
 * hashing. It settles only once no read or write is left in flight: the caller closes both
 * descriptors next, and a read or write still queued would then hit a closed descriptor (an
 * uncaught EBADF) or one the next open reused (stray bytes in another file).
 */
async function copyLarge(src: number, out: number): Promise<string> {
  const h = newHash();
  const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const quiet = <T>(p: Promise<T>): Promise<T> => (p.catch(() => {}), p); // awaited below, maybe only after the other failed
  let pos = 0;
  let pending: Promise<void> = Promise.resolve();
  let reading = quiet(readAsync(src, bufs[0]!, 0, CHUNK, 0));
  try {
    for (let k = 0; ; k++) {
      const { bytesRead: n } = await reading;
      if (n === 0) break;
      const cur = bufs[k % 3]!;
      // bufs[(k+1) % 3] last held chunk k-2, whose write finished before chunk k-1's began.
      reading = quiet(readAsync(src, bufs[(k + 1) % 3]!, 0, CHUNK, pos + n));
      h.update(cur.subarray(0, n));
      await pending;
      pending = quiet(writeFull(out, cur, n, pos));
      pos += n;
    }
    await pending;
  } catch (err) {
    await Promise.allSettled([reading, pending]);
    throw err;
  }
  return h.digest('hex');
}

/**
 * Opens the stored file (never through a symlink) at once, then copies it into `out` and
 * returns the sha256 of the bytes read. `file` is used only before the first await.
 */
export function copyStored(file: Buffer, out: number): Promise<string> {
  const src = openSync(file, C.O_RDONLY | C.O_NOFOLLOW);
  let async = false;
  try {
    const st = fstatSync(src);
    if (!st.isFile()) throw new L2Error(`${file.toString('utf8')} in the snapshot is not a regular file`);
    if (st.size >= SMALL) {
      async = true;
      return copyLarge(src, out).finally(() => closeSync(src));
    }
    const h = newHash();
    let pos = 0;
    for (;;) {
      const n = readSync(src, shared, 0, SMALL, pos);
      if (n === 0) break;
      h.update(shared.subarray(0, n));
      writeFullSync(out, shared, n, pos);
      pos += n;
    }
    return Promise.resolve(h.digest('hex'));
  } finally {
    if (!async) closeSync(src);
  }
}
