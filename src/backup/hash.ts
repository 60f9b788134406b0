/**
 * The one hashing helper: sha256 of bytes, of an open descriptor, or of a file opened without
 * following a symlink. Snapshot, restore, verify, cleanup-logs, the catalog, the file list and
 * the remote copies all hash through here, so "the hash of a file" means the same thing everywhere.
 */
import { createHash, hash as oneShot, type Hash } from 'node:crypto';
import { constants as C, promises as fs, openSync, closeSync, readSync } from 'node:fs';

export const CHUNK = 1 << 20;

export function newHash(): Hash {
  return createHash('sha256');
}

/** One shot (no Hash object: several times cheaper for the many small files of a first backup). */
export function sha256(data: Buffer | string): string {
  return oneShot('sha256', data, 'hex');
}

/** The base64 MD5 of bytes: the Content-MD5 header S3 checks an upload's body against (transport only, never a content hash of ours). */
export function md5Base64(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

export interface Digest {
  sha256: string;
  size: number;
}

/** Hashes what an open descriptor holds from offset 0 (positional reads: the fd's offset is untouched). */
export async function hashFd(fh: fs.FileHandle, buf = Buffer.allocUnsafe(CHUNK)): Promise<Digest> {
  const h = newHash();
  let size = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, size);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { sha256: h.digest('hex'), size };
}

export function hashFdSync(fd: number, buf = Buffer.allocUnsafe(CHUNK)): Digest {
  const h = newHash();
  let size = 0;
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, size);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    size += n;
  }
  return { sha256: h.digest('hex'), size };
}

/** Hashes a regular file without following a symlink in its last component (ELOOP then). */
export async function hashFile(path: string | Buffer): Promise<Digest> {
  const fh = await fs.open(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${String(path)} is not a regular file`), { code: 'EFTYPE' });
    return await hashFd(fh);
  } finally {
    await fh.close().catch(() => {});
  }
}

export function hashFileSync(path: string | Buffer): Digest {
  const fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  try {
    return hashFdSync(fd);
  } finally {
    closeSync(fd);
  }
}
