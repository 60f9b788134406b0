/**
 * `l2backup export`: a streamed .tar.gz of a snapshot (archiver), for moving it to staging.
 * Written to a temp name and renamed when complete, so a half-written archive never looks done;
 * a failed or interrupted export removes its temp file.
 */
import { constants as C, createReadStream, createWriteStream, openSync, promises as fs, type Stats } from 'node:fs';
import { join, dirname, basename, resolve } from 'node:path';
import type { EntryData } from 'archiver';
import { UsageError } from '../errors.js';
import { FILES, MANIFEST } from './layout.js';
import { entryPath, entryTarget, type Entry } from './manifest.js';
import { overlap } from './realpath.js';
import { Beneath } from './walk.js';

/** `-o FILE`: not empty, in an existing folder, outside BACKUP_ROOT (real paths). Returns the absolute path. */
export async function checkExportTarget(root: string, output: string): Promise<string> {
  if (output.trim() === '') throw new UsageError('-o is empty: name the archive to write, e.g. -o /tmp/snapshot.tar.gz');
  const file = resolve(output);
  const dir = dirname(file);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`-o ${output}: the folder ${dir} does not exist; create it first or write elsewhere`);
  const existing = await fs.lstat(file).catch(() => undefined);
  if (existing?.isDirectory()) throw new UsageError(`-o ${output} is a folder; name a file inside it, e.g. ${join(file, 'snapshot.tar.gz')}`);
  if (existing && !existing.isFile()) throw new UsageError(`-o ${output} exists and is ${kindName(existing)}, not a regular file; it is never replaced: name a new file, e.g. -o /tmp/snapshot.tar.gz`);
  if (await overlap(root, file)) throw new UsageError(`-o ${output} lies inside BACKUP_ROOT ${root} (real paths compared); write the archive elsewhere`);
  // A folder that takes no new files (/proc, read-only, full of inodes): one usage line now, not a failed export later.
  const probe = join(dir, `.${basename(file)}.probe-${process.pid}`);
  const handle = await fs.open(probe, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`-o ${output}: cannot create a file in ${dir} (${err.code ?? err.message}); write the archive to a writable folder, e.g. -o /tmp/snapshot.tar.gz`);
  });
  await handle.close();
  await fs.rm(probe, { force: true });
  return file;
}

function kindName(st: Stats): string {
  return st.isSymbolicLink() ? 'a symlink' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isFIFO() ? 'a fifo' : st.isSocket() ? 'a socket' : 'not a regular file';
}

/** The archive replaces only a regular file (or nothing): checked again right before the rename. */
async function checkReplaceable(file: string): Promise<void> {
  const st = await fs.lstat(file).catch(() => undefined);
  if (st && !st.isFile()) throw new UsageError(`-o ${file} is now ${kindName(st)}, not a regular file; it is never replaced: name a new file, e.g. -o /tmp/snapshot.tar.gz`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A tar name for raw name bytes. Valid UTF-8 is kept as it is; a byte that is not part of valid
 * UTF-8 becomes `%NN` (a PAX path is UTF-8, so the bytes themselves cannot be carried; archiver would turn a backslash into a slash, so `\\` becomes `%5c` too).
 */
export function archiveName(raw: Buffer): { name: string; escaped: boolean } {
  if (!raw.includes(0x5c)) {
    try {
      return { name: strictUtf8.decode(raw), escaped: false };
    } catch {
      // fall through: escape byte by byte
    }
  }
  let name = '';
  for (let i = 0; i < raw.length; ) {
    const b = raw[i]!;
    const len = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (len > 0 && b !== 0x5c && i + len <= raw.length) {
      try {
        name += strictUtf8.decode(raw.subarray(i, i + len));
        i += len;
        continue;
      } catch {
        // not a valid sequence: escape its lead byte
      }
    }
    name += `%${b.toString(16).padStart(2, '0')}`;
    i++;
  }
  return { name, escaped: true };
}

export interface ExportResult {
  bytes: number;
  files: number;
  /** entries left out: their archive name was taken by another entry (never merged) */
  skipped: string[];
}

export async function exportSnapshot(dir: string, id: string, entries: Entry[], file: string, signal: AbortSignal, warn: (m: string) => void = () => {}): Promise<ExportResult> {
  const { TarArchive } = await import('archiver');
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
  let files = 0;
  const skipped: string[] = [];
  let onAbort = () => {};
  let fail: (err: unknown) => void = () => {};
  let beneath: Beneath | undefined;
  try {
    // Created here first, so a folder that takes no files (/proc, read-only) is one usage line.
    const handle = await fs.open(tmp, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`-o ${file}: cannot create a file in ${dirname(file)} (${err.code ?? err.message}); write the archive to a writable folder, e.g. -o /tmp/snapshot.tar.gz`);
    });
    const output = createWriteStream('', { fd: handle.fd, autoClose: true });
    const archive = new TarArchive({ gzip: true, gzipOptions: { level: 6 } });
    const finished = new Promise<void>((resolve, reject) => {
      fail = (err) => {
        archive.abort();
        output.destroy();
        reject(err);
      };
      output.on('close', resolve);
      output.on('error', reject);
      archive.on('error', reject);
      archive.on('warning', reject);
      onAbort = () => {
        archive.abort();
        output.destroy();
        reject(signal.reason);
      };
    });
    finished.catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    archive.pipe(output);
    const used = new Map<string, string>();
    // Files are opened folder by folder (never by whole path): a tree deeper than PATH_MAX exports too.
    beneath = new Beneath(dir);
    for (const e of entries) {
      const raw = entryPath(e);
      const rel = archiveName(raw);
      const name = raw.length === 0 ? `${id}/${e.s}` : `${id}/${e.s}/${rel.name}`;
      const shown = JSON.stringify(`${e.s}/${e.p}`);
      const taken = used.get(name);
      if (taken !== undefined) {
        skipped.push(shown);
        warn(`export: ${shown} would have the same archive name as ${taken} (${JSON.stringify(name)}, names differ only in bytes that are not UTF-8); left out of the archive, copy it by hand`);
        continue;
      }
      used.set(name, shown);
      if (rel.escaped) warn(`export: ${shown} has bytes that are not UTF-8 (or a backslash); stored in the archive as ${JSON.stringify(name)}`);
      const date = new Date(e.mtime);
      if (e.t === 'd') archive.append('', { name: `${name}/`, type: 'directory', mode: e.mode, date } as EntryData);
      else if (e.t === 'l') archive.symlink(name, archiveName(entryTarget(e)).name, e.mode);
      else {
        // Opened now: the path through the open folder is valid only until the next entry.
        let fd: number;
        try {
          fd = openSync(beneath.path(Buffer.concat([Buffer.from(`${e.s}/`), raw])), C.O_RDONLY | C.O_NOFOLLOW);
        } catch (err) {
          fail(err); // a file gone from the snapshot ends the export
          throw err;
        }
        const stream = createReadStream('', { fd, autoClose: true });
        stream.on('error', (err) => fail(err)); // a file gone from the snapshot ends the export
        archive.append(stream, { name, mode: e.mode, date });
        files++;
      }
    }
    beneath.close();
    beneath = undefined;
    archive.file(join(dir, MANIFEST), { name: `${id}/${MANIFEST}` });
    archive.file(join(dir, FILES), { name: `${id}/${FILES}` });
    await Promise.race([archive.finalize(), finished]);
    await finished;
    signal.throwIfAborted();
    await checkReplaceable(file);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  } finally {
    beneath?.close();
    signal.removeEventListener('abort', onAbort);
  }
  return { bytes: (await fs.stat(file)).size, files, skipped };
}
