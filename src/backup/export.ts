/**
 * `l2backup export`: a streamed .tar.gz of a snapshot (archiver), for moving it to staging.
 * Written to a temp name and renamed when complete, so a half-written archive never looks done;
 * a failed or interrupted export removes its temp file.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { join, dirname, basename, resolve } from 'node:path';
import type { EntryData } from 'archiver';
import { UsageError } from '../errors.js';
import { FILES, MANIFEST } from './layout.js';
import { entryPath, type Entry } from './manifest.js';
import { overlap } from './realpath.js';

/** `-o FILE`: not empty, in an existing folder, outside BACKUP_ROOT (real paths). Returns the absolute path. */
export async function checkExportTarget(root: string, output: string): Promise<string> {
  if (output.trim() === '') throw new UsageError('-o is empty: name the archive to write, e.g. -o /tmp/snapshot.tar.gz');
  const file = resolve(output);
  const dir = dirname(file);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`-o ${output}: the folder ${dir} does not exist; create it first or write elsewhere`);
  if ((await fs.stat(file).catch(() => undefined))?.isDirectory()) throw new UsageError(`-o ${output} is a folder; name a file inside it, e.g. ${join(file, 'snapshot.tar.gz')}`);
  if (await overlap(root, file)) throw new UsageError(`-o ${output} lies inside BACKUP_ROOT ${root} (real paths compared); write the archive elsewhere`);
  return file;
}

export async function exportSnapshot(dir: string, id: string, entries: Entry[], file: string, signal: AbortSignal): Promise<{ bytes: number; files: number }> {
  const { TarArchive } = await import('archiver');
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
  let files = 0;
  let onAbort = () => {};
  let fail: (err: unknown) => void = () => {};
  try {
    const output = createWriteStream(tmp, { mode: 0o600, flags: 'wx' });
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
    for (const e of entries) {
      const name = e.p === '' ? `${id}/${e.s}` : `${id}/${e.s}/${e.p}`;
      const date = new Date(e.mtime);
      if (e.t === 'd') archive.append('', { name: `${name}/`, type: 'directory', mode: e.mode, date } as EntryData);
      else if (e.t === 'l') archive.symlink(name, e.target!, e.mode);
      else {
        const stream = createReadStream(Buffer.concat([Buffer.from(join(dir, e.s) + '/'), entryPath(e)]));
        stream.on('error', (err) => fail(err)); // a file gone from the snapshot ends the export
        archive.append(stream, { name, mode: e.mode, date });
        files++;
      }
    }
    archive.file(join(dir, MANIFEST), { name: `${id}/${MANIFEST}` });
    archive.file(join(dir, FILES), { name: `${id}/${FILES}` });
    await Promise.race([archive.finalize(), finished]);
    await finished;
    signal.throwIfAborted();
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return { bytes: (await fs.stat(file)).size, files };
}
