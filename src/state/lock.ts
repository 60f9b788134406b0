/**
 * Exclusive locks on the backups volume, with an owner record (pid, host, start time, command).
 *
 * Why not proper-lockfile: it judges staleness only by an mtime heartbeat and records no owner,
 * so it can neither say who holds a lock nor take over at once from an owner that is
 * provably dead. Here:
 * - acquire = link(2) of a fully written temp file to the lock path: atomic, fails with EEXIST,
 *   and a lock file is never seen half-written. A lock file that is absent (just released) is
 *   simply tried again: it is never "dead";
 * - same host: the owner is dead when its pid is gone or now belongs to another process
 *   (/proc start time differs);
 * - another host (a second container on the same volume): dead when its heartbeat (the lock
 *   file's mtime, touched every 30 s) is older than 2 minutes;
 * - takeover of a dead owner is atomic: the newcomer must first win a marker named after the
 *   dead owner's token (`<lock>.takeover-<token>`, link(2) again), and then renames its own
 *   record over the lock file, which never goes missing in between. Only the marker's winner
 *   may replace that owner; a plain acquire cannot (the file is there), and the dead owner
 *   releases nothing. A newcomer that wins a marker after the takeover finished finds another
 *   token in the lock and backs off. A marker left by a taker that died is itself taken over
 *   the same way (a marker of the marker);
 * - release removes the file only if it still holds our token;
 * - symlinks at a lock path are refused, never followed;
 * - a lock that cannot be written because the volume is full or read-only: run locks go on
 *   without it, with a warning (nothing else can write there either); mutexes throw
 *   UnwritableError so their caller can choose another way (the alert buffer sends directly).
 */
import { promises as fs, constants as C, closeSync, fstatSync, linkSync, openSync, readSync, renameSync, unlinkSync, writeFileSync, statSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LockedError, SymlinkRefusedError, UnwritableError, asUnwritable, errnoCode } from '../errors.js';
import { ensureStateDir, tempName, uniqueSuffix, FILE_MODE } from './files.js';
import { formatAge } from '../output/index.js';

/**
 * node:os, loaded when a lock is taken or judged: the light commands (scripts/bundle.mjs)
 * include this module through the alert buffer but never lock, ~0.7 M instructions of start-up.
 */
const hostname = (): string => process.getBuiltinModule('node:os').hostname();

export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
  token: string;
  /** /proc/<pid>/stat start time, to tell a live owner from a reused pid. */
  procStart?: string;
}

export interface HeldLock {
  path: string;
  owner: LockOwner;
  /** Set when the lock could not be written (full or read-only volume) and the run goes on without it. */
  notHeld?: string;
  release(): Promise<void>;
}

const HEARTBEAT_MS = 30_000;
const FOREIGN_STALE_MS = 120_000;
/** Markers of markers: a taker that died mid-takeover, then its successor too... bounded. */
const MAX_TAKEOVER_DEPTH = 4;

const held = new Map<string, LockOwner>();
let exitHookInstalled = false;

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** What is at a lock path now. */
type LockFile =
  | { kind: 'absent' }
  | { kind: 'owner'; owner: LockOwner; id: string }
  /** Present but not an owner record (debris; link(2) of a complete file never makes one). */
  | { kind: 'garbage'; id: string }
  /** Another user's lock we may not read: assumed alive rather than broken. */
  | { kind: 'unreadable' };

/**
 * A valid owner record. The pid must be a positive integer: kill(0, sig) signals our own process
 * group and kill(-n, sig) a whole group, so a record naming 0 or a negative pid would look alive
 * forever. A record failing this is garbage: a corrupt lock, taken over with a warning.
 */
function isOwner(v: unknown): v is LockOwner {
  const o = v as LockOwner | null;
  return typeof o === 'object' && o !== null && Number.isSafeInteger(o.pid) && o.pid > 0 && typeof o.host === 'string' && typeof o.token === 'string' && o.token !== '';
}

/** Reads a lock file without following a symlink (a planted link is refused). */
function inspect(path: string): LockFile {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at a lock path must not hang the open (it is then garbage).
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return { kind: 'absent' };
    if (code === 'ELOOP') throw new SymlinkRefusedError(path);
    if (code === 'EACCES') return { kind: 'unreadable' };
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: 'garbage', id: `ino${st.ino}-${st.size}-${Math.round(st.mtimeMs)}` };
    const buf = Buffer.alloc(Math.min(st.size, 64 * 1024));
    const n = st.size > 0 ? readSync(fd, buf, 0, buf.length, 0) : 0;
    let v: unknown;
    try {
      v = JSON.parse(buf.subarray(0, n).toString('utf8'));
    } catch {
      v = undefined;
    }
    if (isOwner(v)) return { kind: 'owner', owner: v, id: v.token };
    return { kind: 'garbage', id: `ino${st.ino}-${st.size}-${Math.round(st.mtimeMs)}` };
  } finally {
    closeSync(fd);
  }
}

export function readLockOwner(path: string): LockOwner | undefined {
  try {
    const f = inspect(path);
    return f.kind === 'owner' ? f.owner : undefined;
  } catch {
    return undefined;
  }
}

function ownerDeadReason(path: string, owner: LockOwner): string | undefined {
  if (owner.host === hostname()) {
    if (owner.pid === process.pid && held.get(path)?.token !== owner.token) return `pid ${owner.pid} is this process, which does not hold it`;
    if (!pidAlive(owner.pid)) return `pid ${owner.pid} is no longer running`;
    const now = procStart(owner.pid);
    if (owner.procStart && now && owner.procStart !== now) return `pid ${owner.pid} now belongs to another process`;
    return undefined;
  }
  try {
    const age = Date.now() - statSync(path).mtimeMs;
    if (age > FOREIGN_STALE_MS) return `its heartbeat from host ${owner.host} stopped ${formatAge(Date.now() - age)} ago`;
  } catch {}
  return undefined;
}

function fileDeadReason(path: string, f: LockFile): string | undefined {
  if (f.kind === 'owner') return ownerDeadReason(path, f.owner);
  if (f.kind === 'garbage') return 'the lock file is not an owner record';
  return undefined; // absent: just released, try again; unreadable: assume alive
}

/** Why the owner of the lock at `path` is dead, or undefined when it may be alive (or the lock is free). */
export function deadReason(path: string, owner: LockOwner | undefined): string | undefined {
  if (owner) return ownerDeadReason(path, owner);
  try {
    return fileDeadReason(path, inspect(path));
  } catch {
    return undefined;
  }
}

function describeOwner(owner: LockOwner): string {
  return `pid ${owner.pid} on ${owner.host} ("${owner.command}") since ${owner.startedAt} (${formatAge(owner.startedAt)} ago)`;
}

/** Our owner record in a fresh temp file beside `path`. */
function writeRecord(path: string, owner: LockOwner): string {
  const tmp = tempName(path);
  try {
    writeFileSync(tmp, JSON.stringify(owner) + '\n', { mode: FILE_MODE, flag: 'wx' });
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw asUnwritable(err, path);
  }
  return tmp;
}

function tryLink(path: string, owner: LockOwner): boolean {
  const tmp = writeRecord(path, owner);
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw asUnwritable(err, path);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {}
  }
}

function removeIfOurs(path: string, owner: LockOwner): void {
  // Read and unlink with no await in between: nothing in this process can interleave.
  if (readLockOwner(path)?.token === owner.token) {
    try {
      unlinkSync(path);
    } catch {}
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: a process that exits without releasing (an uncaught error) still frees its locks.
  process.on('exit', () => {
    for (const [path, owner] of held) removeIfOurs(path, owner);
  });
}

const markerName = (path: string, id: string) => `${path}.takeover-${id.replace(/[^A-Za-z0-9._-]/g, '_')}`;

/**
 * Replaces the dead lock file `deadId` at `path` by our record. Returns true when we now hold
 * `path`; false when someone else is taking it over or already did (the caller tries again).
 */
function takeOver(path: string, deadId: string, owner: LockOwner, depth = 0): boolean {
  const marker = markerName(path, deadId);
  let won = tryLink(marker, owner);
  if (!won) {
    const m = inspect(marker);
    // Absent: the winner finished, so `path` no longer holds deadId. Alive: it is working.
    if (m.kind === 'absent' || m.kind === 'unreadable' || depth >= MAX_TAKEOVER_DEPTH) return false;
    if (fileDeadReason(marker, m) === undefined) return false;
    won = takeOver(marker, m.id, owner, depth + 1); // its taker died mid-takeover: take its place
    if (!won) return false;
  }
  try {
    // Holding the marker, only we may change `path` while it holds deadId.
    const now = inspect(path);
    if ((now.kind === 'owner' || now.kind === 'garbage') && now.id === deadId) {
      const tmp = writeRecord(path, owner);
      try {
        renameSync(tmp, path);
      } catch (err) {
        try {
          unlinkSync(tmp);
        } catch {}
        throw asUnwritable(err, path);
      }
      return true;
    }
    return false;
  } finally {
    // `path` no longer holds deadId (or never will again): the marker has done its work.
    removeIfOurs(marker, owner);
  }
}

export interface AcquireOptions {
  /** Keep trying this long (a mutex); 0 = fail at once (a run lock, exit 75). */
  waitMs?: number;
  /** Called with a warning: a dead owner's lock taken over, or a lock that could not be written. */
  onTakeover?: (message: string) => void;
  /**
   * A full or read-only volume: 'proceed' (run locks: go on without the lock, warned) or
   * 'throw' (mutexes: UnwritableError). Default 'proceed'.
   */
  ifUnwritable?: 'proceed' | 'throw';
}

export async function acquireLock(path: string, command: string, opts: AcquireOptions = {}): Promise<HeldLock> {
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    command,
    token: `${hostname()}-${uniqueSuffix()}-${Date.now()}`,
    procStart: procStart(process.pid),
  };
  try {
    await ensureStateDir(dirname(path));
    installExitHook();
    await takeLock(path, owner, opts);
  } catch (err) {
    if (err instanceof UnwritableError && opts.ifUnwritable !== 'throw') {
      const why = `${err.message}; going on without the lock ${path}`;
      opts.onTakeover?.(why);
      return { path, owner, notHeld: why, release: async () => {} };
    }
    throw asUnwritable(err, path);
  }
  const heartbeat = setInterval(() => {
    const now = new Date();
    fs.utimes(path, now, now).catch(() => {});
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return {
    path,
    owner,
    release: async () => {
      clearInterval(heartbeat);
      removeIfOurs(path, owner);
      if (held.get(path)?.token === owner.token) held.delete(path);
    },
  };
}

async function takeLock(path: string, owner: LockOwner, opts: AcquireOptions): Promise<void> {
  const deadline = Date.now() + (opts.waitMs ?? 0);
  for (let attempt = 0; ; attempt++) {
    if (tryLink(path, owner)) {
      held.set(path, owner); // before any await: this process must see it as held at once
      return;
    }
    const current = inspect(path);
    if (current.kind === 'absent') continue; // released between our link and our look: try again
    const dead = fileDeadReason(path, current);
    if (dead !== undefined && current.kind !== 'unreadable' && takeOver(path, current.id, owner)) {
      held.set(path, owner);
      opts.onTakeover?.(`took over a stale lock ${path}${current.kind === 'owner' ? ` from ${describeOwner(current.owner)}` : ''}: ${dead}`);
      return;
    }
    if (Date.now() >= deadline) {
      if (current.kind !== 'owner') throw new LockedError(`the lock ${path} is held; try again in a moment`);
      throw new LockedError(`another run holds the lock ${path}: ${describeOwner(current.owner)}; wait for it to finish`);
    }
    const pause = Math.min(10 + attempt * 5, 100, Math.max(1, deadline - Date.now()));
    await new Promise((r) => setTimeout(r, pause));
  }
}

/** Runs `fn` holding a short mutex (waits for it up to `waitMs`); UnwritableError on a full or read-only volume. */
export async function withMutex<T>(path: string, command: string, fn: () => Promise<T>, waitMs = 10_000, onTakeover?: (m: string) => void): Promise<T> {
  const lock = await acquireLock(path, command, { waitMs, onTakeover, ifUnwritable: 'throw' });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Who holds a lock now, for status output; undefined when free or held by a dead owner. */
export function lockHolder(path: string): (LockOwner & { stale?: string }) | undefined {
  const owner = readLockOwner(path);
  if (!owner) return undefined;
  const dead = deadReason(path, owner);
  return dead ? { ...owner, stale: dead } : owner;
}
