/**
 * Parallel downloads from the remote, for `restore --from remote` and `verify --remote`
 * (issue 14: one connection made a remote restore 2.4x `aws s3 sync`).
 *
 * - Objects: up to BACKUP_DOWNLOAD_CONCURRENCY at once (a TaskPool, src/backup/task-pool.ts, the caller feeds in walk
 *   order; it waits for a free slot, so the walk never runs far ahead).
 * - Large objects (at least two parts of BACKUP_MULTIPART_MB, or less: downloadParts): ranged
 *   GETs, several parts in flight. Every part waits for a slot of one shared PartSlots, and
 *   holds it until its bytes are hashed in order and written, so the bytes held at once are at
 *   most PART_BUFFER_BYTES whatever the number of large files and the settings.
 * - Every byte is hashed on its way (in object order), and the caller checks the digest against
 *   the manifest: parallelism buys no shortcut.
 */
import { promises as fs } from 'node:fs';
import { newHash, type Digest } from './hash.js';
import { ObjectSizeError, RangeIgnoredError, type Remote } from './remote.js';
import { Slots } from './slots.js';

export interface DownloadOptions {
  /** bytes per ranged part (BACKUP_MULTIPART_MB) */
  partBytes: number;
  /** shared by every large object in flight: bounds the part bytes held at once */
  partSlots: Slots;
  signal?: AbortSignal;
}

/** The bytes of ranged parts held at once, whatever the settings (uploads: LARGE_UPLOAD_BUFFER_BYTES). */
const PART_BUFFER_BYTES = 128 * 1024 * 1024;
const MIN_PART_BYTES = 1024 * 1024;

/**
 * Part size and part slots for one restore or verify: BACKUP_DOWNLOAD_CONCURRENCY parts of
 * BACKUP_MULTIPART_MB, made smaller (then fewer) as needed to stay within PART_BUFFER_BYTES:
 * 64 x 512 MiB of parts in memory would end a disaster recovery in the OOM killer, and a part
 * over 4 GiB cannot even be one Buffer.
 */
export function downloadParts(s: { multipartBytes: number; downloadConcurrency: number }): Pick<DownloadOptions, 'partBytes' | 'partSlots'> {
  const partBytes = Math.min(s.multipartBytes, Math.max(MIN_PART_BYTES, Math.floor(PART_BUFFER_BYTES / s.downloadConcurrency)));
  return { partBytes, partSlots: new Slots(Math.max(1, Math.min(s.downloadConcurrency, Math.floor(PART_BUFFER_BYTES / partBytes)))) };
}

/** Whether an object of `size` bytes is fetched in ranged parts. */
export const ranged = (size: number, partBytes: number) => size >= 2 * partBytes;

/**
 * Fetches an object's bytes in ranged parts, several in flight, and hands each part to `consume`
 * in order (the hash needs them in order). Parts take slots in order and keep them until
 * consumed, so the slots a file holds are always its next parts: the part consumed next is in
 * flight, and no set of files can wait on each other.
 */
async function inParts(remote: Remote, key: string, size: number, opts: DownloadOptions, consume: (part: Buffer, offset: number) => Promise<void>): Promise<void> {
  const parts: { offset: number; end: number }[] = [];
  for (let offset = 0; offset < size; offset += opts.partBytes) parts.push({ offset, end: Math.min(size, offset + opts.partBytes) - 1 });
  const inner = new AbortController();
  const onOuter = () => inner.abort(opts.signal!.reason);
  opts.signal?.addEventListener('abort', onOuter, { once: true });
  const fetched: Promise<Buffer>[] = [];
  const holding: boolean[] = [];
  const release = (i: number) => {
    if (!holding[i]) return;
    holding[i] = false;
    opts.partSlots.release();
  };
  let wake = () => {};
  let launching = true;
  let firstFailure: { err: unknown } | undefined;
  const launcher = (async () => {
    try {
      for (const p of parts) {
        await opts.partSlots.acquire();
        if (inner.signal.aborted) {
          opts.partSlots.release();
          return;
        }
        holding.push(true);
        const got = remote.getRange(key, p.offset, p.end, size, inner.signal);
        got.catch((err: unknown) => {
          firstFailure ??= { err };
          inner.abort(err);
        });
        fetched.push(got);
        wake();
      }
    } finally {
      launching = false;
      wake();
    }
  })();
  try {
    for (let i = 0; i < parts.length; i++) {
      while (fetched.length <= i && launching) await new Promise<void>((r) => (wake = r));
      if (fetched.length <= i) throw inner.signal.reason;
      const buf = await fetched[i]!;
      try {
        await consume(buf, parts[i]!.offset);
      } finally {
        release(i);
      }
    }
  } catch (err) {
    inner.abort(err);
    await launcher;
    await Promise.all(fetched.map((f, i) => f.then(() => release(i), () => release(i))));
    throw firstFailure ? firstFailure.err : err;
  } finally {
    opts.signal?.removeEventListener('abort', onOuter);
  }
}

/**
 * Downloads an object into `dest` (created, mode 0600), hashing every byte. Not fsynced here:
 * a restore makes its files durable with one syncfs per filesystem before it reports success
 * (restore.ts: makeRestoreDurable). A size other than `size` shows as a digest the caller refuses.
 */
/** A digest, or what made the object's bytes unfit to hash (its size is not the file list's). */
export type Fetched = Digest & { problem?: string };

export async function downloadObject(remote: Remote, key: string, dest: string, size: number, opts: DownloadOptions): Promise<Fetched> {
  if (!ranged(size, opts.partBytes)) return remote.download(key, dest, opts.signal);
  try {
    return await downloadInParts(remote, key, dest, size, opts);
  } catch (err) {
    // A server that ignores Range: one streamed GET instead (it truncates what the parts wrote).
    if (err instanceof RangeIgnoredError) return remote.download(key, dest, opts.signal);
    throw err;
  }
}

async function downloadInParts(remote: Remote, key: string, dest: string, size: number, opts: DownloadOptions): Promise<Fetched> {
  const fh = await fs.open(dest, 'wx', 0o600);
  try {
    const hash = newHash();
    try {
      await inParts(remote, key, size, opts, async (part, offset) => {
        hash.update(part);
        for (let done = 0; done < part.length; ) done += (await fh.write(part, done, part.length - done, offset + done)).bytesWritten;
      });
    } catch (err) {
      if (err instanceof ObjectSizeError) return { sha256: 'size-mismatch', size: -1, problem: err.message };
      throw err;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await fh.close();
  }
}

/** Hashes an object without storing it (verify --remote). */
export async function hashRemoteObject(remote: Remote, key: string, size: number, opts: DownloadOptions): Promise<Digest> {
  if (!ranged(size, opts.partBytes)) return remote.hashObject(key, opts.signal);
  const hash = newHash();
  try {
    await inParts(remote, key, size, opts, async (part) => void hash.update(part));
  } catch (err) {
    if (err instanceof ObjectSizeError) return { sha256: 'size-mismatch', size: -1 };
    if (err instanceof RangeIgnoredError) return remote.hashObject(key, opts.signal);
    throw err;
  }
  return { sha256: hash.digest('hex'), size };
}
