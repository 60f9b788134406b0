/**
 * `l2backup export`: a streamed .tar.gz of a snapshot (archiver), for moving it to staging.
 * Written to a temp name and renamed when complete, so a half-written archive never looks done.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import type { EntryData } from 'archiver';
import { FILES, MANIFEST } from './layout.js';
import type { Entry } from './manifest.js';

export async function exportSnapshot(dir: string, id: string, entries: Entry[], file: string, signal: AbortSignal): Promise<{ bytes: number; files: number }> {
  const { TarArchive } = await import('archiver');
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
  const output = createWriteStream(tmp, { mode: 0o600 });
  const archive = new TarArchive({ gzip: true, gzipOptions: { level: 6 } });
  const finished = new Promise<void>((resolve, reject) => {
    output.on('close', resolve);
    output.on('error', reject);
    archive.on('error', reject);
    archive.on('warning', reject);
  });
  const onAbort = () => archive.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  archive.pipe(output);
  let files = 0;
  try {
    for (const e of entries) {
      const name = e.p === '' ? `${id}/${e.s}` : `${id}/${e.s}/${e.p}`;
      const date = new Date(e.mtime);
      if (e.t === 'd') archive.append('', { name: `${name}/`, type: 'directory', mode: e.mode, date } as EntryData);
      else if (e.t === 'l') archive.symlink(name, e.target!, e.mode);
      else {
        archive.file(join(dir, e.s, e.p), { name, mode: e.mode, date });
        files++;
      }
    }
    archive.file(join(dir, MANIFEST), { name: `${id}/${MANIFEST}` });
    archive.file(join(dir, FILES), { name: `${id}/${FILES}` });
    await archive.finalize();
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
