/**
 * The one place that writes state files.
 * - Whole files are replaced atomically: temp file, fsync, rename, fsync of the directory, so a
 *   reader (or a crash) sees the old or the new content, never a torn one.
 * - JSONL appends are one write(2) on an O_APPEND descriptor, made under a mutex by callers
 *   that also rewrite the file, so lines never interleave.
 * - Unreadable or corrupt state is renamed aside (never deleted) and reported.
 * Files are created 0600 and directories 0700: state may hold alert texts and hostnames.
 */
import { promises as fs, constants as C, closeSync, fsyncSync, openSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { errnoCode } from '../errors.js';

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

export async function writeFileAtomic(path: string, data: string | Buffer, mode = FILE_MODE): Promise<void> {
  await ensureDir(dirname(path));
  const tmp = tempName(path);
  const handle = await fs.open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(path));
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Appends whole lines in one write(2); creates the file 0600. */
export async function appendLines(path: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await ensureDir(dirname(path));
  const handle = await fs.open(path, C.O_WRONLY | C.O_APPEND | C.O_CREAT, FILE_MODE);
  try {
    await handle.write(lines.map((l) => l + '\n').join(''));
    await handle.datasync();
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
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return undefined;
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
