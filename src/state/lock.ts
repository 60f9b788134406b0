/**
 * Exclusive locks on the backups volume, with an owner record (pid, host, start time, command).
 *
 * Why not proper-lockfile: it judges staleness only by an mtime heartbeat and records no owner,
 * so it can neither say who holds a lock nor take over at once from an owner that is
 * provably dead. Here:
 * - acquire = link(2) of a fully written temp file to the lock path: atomic, fails with EEXIST,
 *   and a lock file is never seen half-written;
 * - same host: the owner is dead when its pid is gone or now belongs to another process
 *   (/proc start time differs), and the lock is taken over with a warning;
 * - another host (a second container on the same volume): dead when its heartbeat (the lock
 *   file's mtime, touched every 30 s) is older than 2 minutes;
 * - takeover is serialised by a short-lived `.takeover` lock so two newcomers cannot both
 *   replace the same dead owner;
 * - release removes the file only if it still holds our token.
 */
import { promises as fs, readFileSync, unlinkSync, linkSync, writeFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { LockedError, errnoCode } from '../errors.js';
import { ensureDir, tempName, uniqueSuffix, FILE_MODE } from './files.js';
import { formatAge } from '../output/index.js';

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
  release(): Promise<void>;
}

const HEARTBEAT_MS = 30_000;
const FOREIGN_STALE_MS = 120_000;
const TAKEOVER_STALE_MS = 10_000;

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
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

export function readLockOwner(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' && typeof o.token === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Why the owner is dead, or undefined when it may be alive. */
export function deadReason(path: string, owner: LockOwner | undefined): string | undefined {
  if (!owner) {
    try {
      readFileSync(path);
    } catch (err) {
      // Another user's lock we may not read: assume it is alive rather than break it.
      if (errnoCode(err) === 'EACCES') return undefined;
    }
    // Garbage content cannot come from link(2) of a complete file; treat it as debris.
    return 'the lock file is unreadable';
  }
  if (owner.host === hostname()) {
    if (owner.pid === process.pid && !held.has(path)) return `pid ${owner.pid} is this process, which does not hold it`;
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

function describeOwner(owner: LockOwner): string {
  return `pid ${owner.pid} on ${owner.host} ("${owner.command}") since ${owner.startedAt} (${formatAge(owner.startedAt)} ago)`;
}

function tryLink(path: string, owner: LockOwner): boolean {
  const tmp = tempName(path);
  writeFileSync(tmp, JSON.stringify(owner) + '\n', { mode: FILE_MODE, flag: 'wx' });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {}
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: a process that exits without releasing (an uncaught error) still frees its locks.
  process.on('exit', () => {
    for (const [path, owner] of held) {
      if (readLockOwner(path)?.token === owner.token) {
        try {
          unlinkSync(path);
        } catch {}
      }
    }
  });
}

export interface AcquireOptions {
  /** Keep trying this long (a mutex); 0 = fail at once (a run lock, exit 75). */
  waitMs?: number;
  /** Called when a dead owner's lock is taken over. */
  onTakeover?: (message: string) => void;
}

export async function acquireLock(path: string, command: string, opts: AcquireOptions = {}): Promise<HeldLock> {
  await ensureDir(dirname(path));
  installExitHook();
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    command,
    token: `${hostname()}-${uniqueSuffix()}-${Date.now()}`,
    procStart: procStart(process.pid),
  };
  const deadline = Date.now() + (opts.waitMs ?? 0);
  for (let attempt = 0; ; attempt++) {
    if (tryLink(path, owner)) break;
    const current = readLockOwner(path);
    const dead = deadReason(path, current);
    if (dead !== undefined && takeOver(path, current, owner)) {
      opts.onTakeover?.(`took over a stale lock ${path}${current ? ` from ${describeOwner(current)}` : ''}: ${dead}`);
      break;
    }
    if (Date.now() >= deadline) {
      if (!current) throw new LockedError(`the lock ${path} is held; try again in a moment`);
      throw new LockedError(`another run holds the lock ${path}: ${describeOwner(current)}; wait for it to finish`);
    }
    await new Promise((r) => setTimeout(r, Math.min(10 + attempt * 5, 100)));
  }
  held.set(path, owner);
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
      held.delete(path);
      if (readLockOwner(path)?.token === owner.token) await fs.rm(path, { force: true });
    },
  };
}

/** Replaces a dead owner's lock with ours, under a short takeover lock. */
function takeOver(path: string, dead: LockOwner | undefined, owner: LockOwner): boolean {
  const guard = `${path}.takeover`;
  if (!tryLink(guard, owner)) {
    try {
      if (Date.now() - statSync(guard).mtimeMs > TAKEOVER_STALE_MS) unlinkSync(guard);
    } catch {}
    return false;
  }
  try {
    const now = readLockOwner(path);
    if ((now?.token ?? null) !== (dead?.token ?? null)) return false; // someone else got there first
    try {
      unlinkSync(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    return tryLink(path, owner);
  } finally {
    if (readLockOwner(guard)?.token === owner.token) {
      try {
        unlinkSync(guard);
      } catch {}
    }
  }
}

/** Runs `fn` holding a short mutex (waits for it up to `waitMs`). */
export async function withMutex<T>(path: string, command: string, fn: () => Promise<T>, waitMs = 10_000, onTakeover?: (m: string) => void): Promise<T> {
  const lock = await acquireLock(path, command, { waitMs, onTakeover });
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
