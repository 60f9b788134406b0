/**
 * The publish stage: a snapshot becomes visible only once it is durable. Its data reaches the
 * disk first (one syncfs of the volume via `sync -f`; where that is missing, an fsync of every
 * file and folder), then the rename publishes it, then the parent folder is fsynced so the
 * rename itself survives a host crash.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { promises as fs, constants as C } from 'node:fs';
import { dirname } from 'node:path';
import { walk } from './walk.js';

const run = promisify(execFile);

export async function fsyncPath(path: string | Buffer): Promise<void> {
  const fh = await fs.open(path, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes everything below `dir` durable: one syncfs, or an fsync per file and folder. */
export async function makeDurable(dir: string): Promise<'syncfs' | 'fsync'> {
  try {
    await run('sync', ['--file-system', dir]);
    return 'syncfs';
  } catch {
    for (const ev of walk(dir)) {
      if (ev.type === 'entry' && (ev.kind === 'f' || ev.kind === 'd')) await fsyncPath(ev.abs);
    }
    return 'fsync';
  }
}

/** Durable, then renamed into place, then the rename made durable. */
export async function publishDir(tmp: string, finalDir: string): Promise<void> {
  await makeDurable(tmp);
  await fs.rename(tmp, finalDir);
  await fsyncPath(dirname(finalDir));
}
