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
import { promises as fs, constants as C, closeSync, fstatSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { dirname, basename, join, relative, resolve, sep, isAbsolute } from 'node:path';
import { L2Error, SymlinkRefusedError, asUnwritable, errnoCode, UNWRITABLE_CODES } from '../errors.js';

/**
 * A state path that holds something other than a regular file (a FIFO, a folder, a device), or
 * that cannot be opened. Keeps the errno as `code` so callers can still tell ENOENT apart.
 */
export class StateFileError extends L2Error {
  constructor(
    readonly path: string,
    readonly code: string,
    why: string,
    fix = 'move it away (l2ops recreates it)',
  ) {
    super(`state file ${path} ${why}; ${fix}`);
  }
}

/**
 * The backups volume (BACKUP_ROOT). Below it no folder of a state path may be a symlink; above
 * it (the operator's mount layout) links are the operator's business. Set once by the CLI.
 */
let stateRoot: string | undefined;
export function setStateRoot(root: string | undefined): void {
  stateRoot = root ? resolve(root) : undefined;
}

/**
 * Did this process write or append a state file? A run that ends in exit 2 (bad usage or
 * configuration) after it recorded something (a nightly that finds its source overlaps
 * BACKUP_ROOT once links are followed: a failed run record, an alert) still needs its status page
 * and metrics rewritten (src/cli/common.ts), or they keep saying the last run was ok.
 */
let wroteState = false;
export function stateWritten(): boolean {
  return wroteState;
}

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

/**
 * Creates a state folder (0700) one component at a time and refuses a symlink (or a non-folder)
 * at any component below BACKUP_ROOT, so a link planted at `.l2` or `.l2/locks` is never
 * written through. Outside BACKUP_ROOT (or before it is known) only the last component is checked.
 */
export async function ensureStateDir(dir: string): Promise<void> {
  const abs = resolve(dir);
  const rel = stateRoot ? relative(stateRoot, abs) : '';
  const below = stateRoot !== undefined && rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  if (!below) {
    try {
      await fs.mkdir(abs, { recursive: true, mode: DIR_MODE });
    } catch (err) {
      throw asUnwritable(await mkdirErrno(abs, err), abs);
    }
    await refuseNonDir(abs);
    return;
  }
  try {
    await fs.mkdir(stateRoot!, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw asUnwritable(await mkdirErrno(stateRoot!, err), stateRoot!);
  }
  let at = stateRoot!;
  for (const part of rel.split(sep)) {
    at = join(at, part);
    try {
      await fs.mkdir(at, { mode: DIR_MODE });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw asUnwritable(err, at);
    }
    await refuseNonDir(at);
  }
}

async function refuseNonDir(dir: string): Promise<void> {
  const st = await fs.lstat(dir);
  if (st.isSymbolicLink()) throw new SymlinkRefusedError(dir);
  if (!st.isDirectory()) throw new StateFileError(dir, 'ENOTDIR', 'is not a folder');
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
  wroteState = true;
  await fsyncDir(dirname(path));
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Opens a state file: never through a symlink (refused), never blocking (a FIFO planted at the
 * path would hang the open forever), and only a regular file (a folder, FIFO or device is a
 * StateFileError naming the path). ENOENT is thrown as is: callers treat it as "no state yet".
 */
export async function openState(path: string, flags: number, mode = FILE_MODE): Promise<fs.FileHandle> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, flags | C.O_NOFOLLOW | C.O_NONBLOCK, mode);
  } catch (err) {
    throw openFailure(path, err);
  }
  let st;
  try {
    st = await handle.stat();
  } catch (err) {
    await handle.close().catch(() => {});
    throw statFailure(path, err);
  }
  if (!st.isFile()) {
    await handle.close().catch(() => {});
    throw notRegular(path);
  }
  return handle;
}

/** Why a state file could not be opened, as the error openState throws. */
function openFailure(path: string, err: unknown): unknown {
  const code = errnoCode(err);
  if (code === 'ELOOP') return new SymlinkRefusedError(path);
  if (code === 'ENOENT' || (code && code in UNWRITABLE_CODES)) return asUnwritable(err, path);
  if (code === 'EISDIR' || code === 'ENXIO' || code === 'ENODEV') return new StateFileError(path, code, 'is not a regular file');
  if (code === 'EACCES' || code === 'EPERM') return new StateFileError(path, code, `is not accessible (${code})`, 'fix its permissions (it should belong to the user running l2ops)');
  return new StateFileError(path, code ?? 'EIO', `cannot be opened (${code ?? errorText(err)})`);
}

function statFailure(path: string, err: unknown): StateFileError {
  return new StateFileError(path, errnoCode(err) ?? 'EIO', `cannot be read (${errnoCode(err) ?? errorText(err)})`);
}

function notRegular(path: string): StateFileError {
  return new StateFileError(path, 'EFTYPE', 'is not a regular file');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
 * readState, synchronously: for the read-only commands (`l2alert buffer-status`), which then
 * spare loading node:fs/promises at start-up. Same checks, same errors.
 */
export function readStateSync(path: string): string {
  return readStateSyncWithId(path).text;
}

/** readStateSync, with the identity (device, inode) of the file that was read. */
function readStateSyncWithId(path: string): { text: string; dev: number; ino: number } {
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    throw openFailure(path, err);
  }
  try {
    let st;
    try {
      st = fstatSync(fd);
    } catch (err) {
      throw statFailure(path, err);
    }
    if (!st.isFile()) throw notRegular(path);
    return { text: readFileSync(fd, 'utf8'), dev: st.dev, ino: st.ino };
  } finally {
    closeSync(fd);
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
        wroteState = true;
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
  const target = asideName(path);
  await fs.rename(path, target);
  return target;
}

function asideName(path: string): string {
  return `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '')}`;
}

export type Reporter = (message: string) => void;

/**
 * Reads a JSON state file. Missing: undefined. Corrupt or not passing `valid`: renamed aside,
 * reported, undefined, so a run goes on with fresh state instead of crashing. A reader that
 * holds no lock (a status command) passes `repair: false`: the file is reported and left as it
 * is, since moving it aside could move away a good record another run has just written there.
 */
export async function readJsonState<T>(path: string, report: Reporter, valid: (v: unknown) => boolean = () => true, opts: { repair?: boolean } = {}): Promise<T | undefined> {
  let text: string;
  try {
    text = await readState(path);
  } catch (err) {
    return reportUnreadable(path, err, report);
  }
  const value = parseJsonState(text, valid);
  if (value !== undefined) return value as T;
  if (opts.repair === false) return reportCorruptKept(path, report);
  try {
    reportSetAside(path, await setAside(path), report);
  } catch {
    reportSetAside(path, undefined, report);
  }
  return undefined;
}

/** readJsonState, synchronously (see readStateSync). */
export function readJsonStateSync<T>(path: string, report: Reporter, valid: (v: unknown) => boolean = () => true, opts: { repair?: boolean } = {}): T | undefined {
  let read: { text: string; dev: number; ino: number };
  try {
    read = readStateSyncWithId(path);
  } catch (err) {
    return reportUnreadable(path, err, report);
  }
  const value = parseJsonState(read.text, valid);
  if (value !== undefined) return value as T;
  if (opts.repair === false) return reportCorruptKept(path, report);
  let aside: string | undefined = asideName(path);
  try {
    renameSync(path, aside);
  } catch {
    aside = undefined;
  }
  // Callers without the lock (buffer-status): another process may have replaced the corrupt file
  // with a good one since it was read. That one is put back (link(2): never over a newer one).
  if (aside !== undefined) {
    const moved = lstatSync(aside, { throwIfNoEntry: false });
    if (moved && (moved.dev !== read.dev || moved.ino !== read.ino)) {
      try {
        linkSync(aside, path);
        unlinkSync(aside);
      } catch {
        // A newer file is in place already: the one moved stays aside, nothing lost.
      }
      report(`state file ${path} was corrupt when read and was rewritten since; left as it is`);
      return undefined;
    }
  }
  reportSetAside(path, aside, report);
  return undefined;
}

function reportUnreadable(path: string, err: unknown, report: Reporter): undefined {
  const code = errnoCode(err);
  if (code === 'ENOENT') return undefined;
  if (err instanceof SymlinkRefusedError || err instanceof StateFileError) report(err.message);
  else report(`state file ${path} is unreadable (${code ?? 'error'}); fix its permissions (it should belong to the user running l2ops)`);
  return undefined;
}

/** The JSON value of a state file's text; undefined when it is not JSON or not `valid`. */
function parseJsonState(text: string, valid: (v: unknown) => boolean): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return value === undefined || !valid(value) ? undefined : value;
}

function reportCorruptKept(path: string, report: Reporter): undefined {
  report(`state file ${path} is corrupt; left as it is (the next backup run, which holds the lock, sets it aside)`);
  return undefined;
}

function reportSetAside(path: string, aside: string | undefined, report: Reporter): void {
  report(aside ? `state file ${path} was corrupt; moved aside to ${aside} and starting fresh` : `state file ${path} is corrupt and could not be moved aside; starting fresh`);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
