/**
 * Local restore's copy stage, run in the copy threads (src/backup/restore-threads.ts): each
 * stored file is copied into a temp file beside its name and hashed in the same read, and the
 * temp file is renamed into place only once that hash (of exactly the bytes written) matched
 * the file's manifest entry. A small file is read, hashed and written synchronously in one go;
 * a large file's next read and previous write run in libuv's pool while the current chunk is
 * hashed. Also the open-folder helpers restore and the threads share: everything is done
 * relative to an open folder (/proc/self/fd/N/name stands in for the *at() calls Node lacks).
 */
import { constants as C, openSync, closeSync, fstatSync, readSync, writeSync, read, write, lstatSync, unlinkSync, renameSync, fchmodSync, futimesSync } from 'node:fs';
import { hash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { L2Error, errnoCode } from '../errors.js';
import { CHUNK, newHash } from './hash.js';
import { type Beneath, removeTree } from './walk.js';
import { RESTORE_TEMP_PREFIX } from './layout.js';

const readAsync = promisify(read);
const writeAsync = promisify(write);
const SMALL = 1 << 20;
const shared = Buffer.allocUnsafe(SMALL);

/** `name` inside the open folder `dirFd`, as a path (a string for a string name: the temp names). */
export function at(dirFd: number, name: string): string;
export function at(dirFd: number, name: Buffer): Buffer;
export function at(dirFd: number, name: Buffer | string): Buffer | string {
  return typeof name === 'string' ? `/proc/self/fd/${dirFd}/${name}` : Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), name]);
}

// One random draw per thread, then a counter: unique in a folder without a CSPRNG call per file.
const tempStem = `${RESTORE_TEMP_PREFIX}${randomBytes(6).toString('hex')}`;
let tempCount = 0;
export const tempName = () => `${tempStem}${(tempCount++).toString(36)}`;

export function removeTemp(dirFd: number, tmp: string): void {
  try {
    unlinkSync(at(dirFd, tmp));
  } catch {
    // not created, or already renamed
  }
}

/** Removes whatever `name` is in the open folder (a folder recursively); never follows a symlink. */
export function removeAt(dirFd: number, name: Buffer): void {
  const p = at(dirFd, name);
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) removeTree(p); // through open folders: a tree deeper than PATH_MAX goes too
  else unlinkSync(p);
}

/** Puts `tmp` in place of `name` in an open folder, replacing a file, symlink or folder there. */
export function replaceAt(dirFd: number, tmp: string, name: Buffer): void {
  try {
    renameSync(at(dirFd, tmp), at(dirFd, name));
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
    removeAt(dirFd, name);
    renameSync(at(dirFd, tmp), at(dirFd, name));
  }
}

function writeFullSync(fd: number, buf: Buffer, n: number, pos: number): void {
  for (let done = 0; done < n; ) done += writeSync(fd, buf, done, n - done, pos + done);
}

async function writeFull(fd: number, buf: Buffer, n: number, pos: number): Promise<void> {
  for (let done = 0; done < n; ) done += (await writeAsync(fd, buf, done, n - done, pos + done)).bytesWritten;
}

/** A large copy given up because the restore stopped (a failure, or the run was interrupted). */
class Stopped extends Error {}

/**
 * Hashes and copies an open descriptor's bytes into `out`; reads ahead and writes behind while
 * hashing. It settles only once no read or write is left in flight: the caller closes both
 * descriptors next, and a read or write still queued would then hit a closed descriptor (an
 * uncaught EBADF) or one the next open reused (stray bytes in another file).
 */
async function copyLarge(src: number, out: number, stopped: () => boolean): Promise<string> {
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
      // A stopping container must not wait for a large file: its temp file is removed unfinished.
      if (stopped()) throw new Stopped();
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

/** Copies a small file synchronously; one read when it holds what fstat said (no second read for the end). */
function copySmall(src: number, out: number, size: number): string {
  let n = readSync(src, shared, 0, SMALL, 0);
  if (n === size) {
    writeFullSync(out, shared, n, 0);
    return hash('sha256', shared.subarray(0, n), 'hex');
  }
  // Short or grown since fstat: read on to the end, hashing as we go.
  const h = newHash();
  for (let pos = 0; n > 0; n = readSync(src, shared, 0, SMALL, pos)) {
    h.update(shared.subarray(0, n));
    writeFullSync(out, shared, n, pos);
    pos += n;
  }
  return h.digest('hex');
}

/**
 * Opens the stored file (never through a symlink, never waiting on a FIFO) at once, then copies it into `out` and
 * returns the sha256 of the bytes read (and written). `file` is used only before the first await.
 */
export function copyStored(file: Buffer, out: number, stopped: () => boolean = () => false, shown = file.toString('utf8')): Promise<string> {
  const src = openSync(file, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  let async = false;
  try {
    const st = fstatSync(src);
    if (!st.isFile()) throw new L2Error(`${shown} in the snapshot is not a regular file; the snapshot is damaged (l2backup verify names what else is)`);
    if (st.size >= SMALL) {
      async = true;
      return copyLarge(src, out, stopped).finally(() => closeSync(src));
    }
    return Promise.resolve(copySmall(src, out, st.size));
  } finally {
    if (!async) closeSync(src);
  }
}

/** One file to restore, as the main thread sends it: names are latin1 strings of the raw bytes. */
export interface CopyJob {
  id: number;
  /** the open folder it lands in (kept open by the main thread until the job is answered) */
  dirFd: number;
  name: string;
  /** its path below the snapshot folder */
  stored: string;
  sha256: string;
  mode: number;
  /** mtime in seconds, as futimes takes it */
  mtime: number;
  size: number;
}

/** An error as it crosses threads: what errorMessage, errnoCode and L2Error's exit code read. */
export interface ThreadError {
  message: string;
  code?: string;
  l2?: boolean;
}

/** landed: in place; sha: did not match (nothing written, temp removed); cancelled: not started, or a large copy given up (temp removed), as the restore stopped. */
export type CopyResult = { id: number; landed: true } | { id: number; sha: string } | { id: number; error: ThreadError } | { id: number; cancelled: true };

export function toThreadError(err: unknown): ThreadError {
  const message = err instanceof Error ? err.message : String(err);
  return { message, code: errnoCode(err), l2: err instanceof L2Error };
}

export function fromThreadError(e: ThreadError): Error {
  if (e.l2) return new L2Error(e.message);
  return Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code });
}

/**
 * Restores one file: fills a temp file beside its name, checks the hash of the bytes written
 * against the manifest's, then sets mode and times and renames it into place. A mismatch or an
 * error removes the temp file; the live file is then left as it was.
 */
export async function restoreFile(job: CopyJob, stored: Beneath, stopped: () => boolean = () => false): Promise<CopyResult> {
  const { id, dirFd } = job;
  const tmp = tempName();
  let fd: number | undefined;
  try {
    fd = openSync(at(dirFd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    const raw = Buffer.from(job.stored, 'latin1');
    const sha = await copyStored(stored.path(raw), fd, stopped, raw.toString('utf8'));
    if (sha !== job.sha256) {
      closeSync(fd);
      fd = undefined;
      removeTemp(dirFd, tmp);
      return { id, sha };
    }
    try {
      fchmodSync(fd, job.mode);
      futimesSync(fd, job.mtime, job.mtime);
    } finally {
      const open = fd;
      fd = undefined;
      closeSync(open);
    }
    replaceAt(dirFd, tmp, Buffer.from(job.name, 'latin1'));
    return { id, landed: true };
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    removeTemp(dirFd, tmp);
    if (err instanceof Stopped) return { id, cancelled: true };
    throw err;
  }
}
