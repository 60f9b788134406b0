/**
 * The one place that writes state files.
 * - Whole files are replaced atomically: temp file, fsync, rename, fsync of the directory, so a
 *   reader (or a crash) sees the old or the new content, never a torn one.
 * - JSONL appends are one write(2) on an O_APPEND descriptor, made under a mutex or run lock
 *   by their callers, so lines never interleave. An append is whole or absent: a short write
 *   (a nearly full volume) is completed or, failing that, cut back to the old size and reported.
 * - Unreadable or corrupt state is renamed aside (never deleted) and reported.
 * - Symlinks are never followed: a link planted where a state file or its folder belongs is
 *   refused (SymlinkRefusedError), not written or read through.
 * - A full or read-only volume is an UnwritableError naming the file, never a bare errno.
 * Files are created 0600 and directories 0700: state may hold alert texts and hostnames.
 */
import { promises as fs, constants as C, closeSync, fsyncSync, openSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { SymlinkRefusedError, asUnwritable, errnoCode } from '../errors.js';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

export async function ensureDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
}

let counter = 0;

/** A unique name for this process: pid, a counter and randomness (node:crypto stays unloaded: start-up cost). */
export function uniqueSuffix(): string {
  return `${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 10)}`;
}

export function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${uniqueSuffix()}`);
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fd = openSync(dir, C.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  }
}

/** Creates a state folder (0700) and refuses one that is a symlink. */
export async function ensureStateDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw asUnwritable(await mkdirErrno(dir, err), dir);
  }
  if ((await fs.lstat(dir)).isSymbolicLink()) throw new SymlinkRefusedError(dir);
}

/** Recursive mkdir reports ENOENT on a read-only volume: find the real reason one level down. */
async function mkdirErrno(dir: string, err: unknown): Promise<unknown> {
  if (errnoCode(err) !== 'ENOENT') return err;
  let missing = dir;
  while (dirname(missing) !== missing && !(await fs.stat(dirname(missing)).then(() => true, () => false))) missing = dirname(missing);
  return fs.mkdir(missing, { mode: DIR_MODE }).then(() => err, (e: unknown) => e);
}

async function refuseSymlink(path: string): Promise<void> {
  try {
    if ((await fs.lstat(path)).isSymbolicLink()) throw new SymlinkRefusedError(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

export async function writeFileAtomic(path: string, data: string | Buffer, mode = FILE_MODE): Promise<void> {
  await ensureStateDir(dirname(path));
  await refuseSymlink(path);
  const tmp = tempName(path);
  let handle;
  try {
    handle = await fs.open(tmp, 'wx', mode);
  } catch (err) {
    throw asUnwritable(err, path);
  }
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw asUnwritable(err, path);
  }
  await handle.close();
  try {
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw asUnwritable(err, path);
  }
  await fsyncDir(dirname(path));
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Opens a state file without following a symlink (a planted link is refused). */
export async function openState(path: string, flags: number, mode = FILE_MODE): Promise<fs.FileHandle> {
  try {
    return await fs.open(path, flags | C.O_NOFOLLOW, mode);
  } catch (err) {
    if (errnoCode(err) === 'ELOOP') throw new SymlinkRefusedError(path);
    throw asUnwritable(err, path);
  }
}

/** Reads a state file without following a symlink. */
export async function readState(path: string): Promise<string> {
  const handle = await openState(path, C.O_RDONLY);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Appends whole lines; creates the file 0600. Whole or absent: a short write is completed, and
 * if the rest cannot be written the file is cut back to its old size and the error thrown.
 * Callers hold the file's mutex or run lock (the cut-back assumes no other appender).
 */
export async function appendLines(path: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await ensureStateDir(dirname(path));
  const handle = await openState(path, C.O_WRONLY | C.O_APPEND | C.O_CREAT);
  try {
    const data = Buffer.from(lines.map((l) => l + '\n').join(''));
    const before = (await handle.stat()).size;
    try {
      for (let written = 0; written < data.length; ) {
        const { bytesWritten } = await handle.write(data, written, data.length - written);
        if (bytesWritten <= 0) throw Object.assign(new Error(`short write to ${path}`), { code: 'ENOSPC' });
        written += bytesWritten;
      }
      await handle.datasync();
    } catch (err) {
      await handle.truncate(before).catch(() => {});
      throw asUnwritable(err, path);
    }
  } finally {
    await handle.close();
  }
}

/** Renames a bad state file aside (`<name>.corrupt-<time>`), keeping it for inspection. */
export async function setAside(path: string): Promise<string> {
  const target = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '')}`;
  await fs.rename(path, target);
  return target;
}

export type Reporter = (message: string) => void;

/**
 * Reads a JSON state file. Missing: undefined. Corrupt or not passing `valid`: renamed aside,
 * reported, undefined, so a run goes on with fresh state instead of crashing.
 */
export async function readJsonState<T>(path: string, report: Reporter, valid: (v: unknown) => boolean = () => true): Promise<T | undefined> {
  let text: string;
  try {
    text = await readState(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return undefined;
    if (err instanceof SymlinkRefusedError) {
      report(err.message);
      return undefined;
    }
    report(`state file ${path} is unreadable (${code ?? 'error'}); fix its permissions (it should belong to the user running l2ops)`);
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (value === undefined || !valid(value)) {
    try {
      const aside = await setAside(path);
      report(`state file ${path} was corrupt; moved aside to ${aside} and starting fresh`);
    } catch {
      report(`state file ${path} is corrupt and could not be moved aside; starting fresh`);
    }
    return undefined;
  }
  return value as T;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
