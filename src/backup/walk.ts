/**
 * The one walker (snapshot, verify, cleanup-logs). Depth first, each folder's names sorted
 * bytewise, so every caller sees the same fixed order (the order of the file list). Names are
 * raw bytes (Buffers): a name with a newline or bytes that are not UTF-8 is walked like any
 * other. Symlinks are listed, never followed: each folder is opened with O_NOFOLLOW and checked
 * (dev/ino) against what its parent's listing saw, and read through that descriptor; a folder
 * swapped meanwhile is a problem event (ECHANGED), never followed. A folder that cannot be read,
 * or an entry that vanishes between readdir and lstat, is reported as a problem event and the
 * walk goes on.
 */
import { constants as C, readdirSync, lstatSync, openSync, fstatSync, closeSync, unlinkSync, rmdirSync, type BigIntStats } from 'node:fs';
import picomatch from 'picomatch';
import { errnoCode } from '../errors.js';

export type Kind = 'f' | 'd' | 'l' | 'other';

export interface WalkEntry {
  type: 'entry';
  /** path relative to the root, raw bytes, '/'-separated; empty for the root itself */
  rel: Buffer;
  /** absolute path, raw bytes */
  abs: Buffer;
  st: BigIntStats;
  kind: Kind;
}

export interface WalkProblem {
  type: 'problem';
  rel: Buffer;
  abs: Buffer;
  /** errno code; ENOENT: vanished during the walk; ECHANGED: a folder swapped (for a symlink...) since it was listed */
  code: string;
  /** true for a folder whose contents could not be listed */
  dir: boolean;
}

export type WalkEvent = WalkEntry | WalkProblem;

/** With `leave: true`: a folder's contents are done (`abs` valid as for its entry), for work that goes bottom up. */
export interface WalkLeave {
  type: 'leave';
  rel: Buffer;
  abs: Buffer;
}

export interface WalkOptions {
  /** true: leave this entry (and a folder's whole subtree) out */
  exclude?: (relText: string, isDir: boolean) => boolean;
  /** true: a folder to step over silently by its stat (BACKUP_ROOT bound inside a source) */
  skipDir?: (st: BigIntStats, rel: Buffer) => boolean;
  /** true: also yield a 'leave' event after each folder's contents (the root's too) */
  leave?: boolean;
}

export function kindOf(st: BigIntStats): Kind {
  return st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'other';
}

const SLASH = Buffer.from('/');

/** Child paths: `parent/name`, or `name` at the top. */
function child(parent: Buffer, name: Buffer): Buffer {
  return parent.length === 0 ? name : Buffer.concat([parent, SLASH, name]);
}

/**
 * Compiles BACKUP_EXCLUDE globs (fast-glob/picomatch syntax, relative to the source, dotfiles
 * included). A pattern ending in '/' (`cache/`, `**\/tmp/`) matches folders only and leaves out
 * the folder with everything below it; `dir/**` leaves out what is below `dir`.
 */
export function compileExcludes(patterns: string[]): (relText: string, isDir: boolean) => boolean {
  const rules = patterns
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => {
      const dirOnly = p.endsWith('/');
      const glob = p.replace(/\/+$/, '').replace(/^\.\//, '');
      return { dirOnly, match: picomatch(glob, { dot: true }) };
    })
    .filter((r) => r.match !== undefined);
  if (rules.length === 0) return () => false;
  return (relText, isDir) => rules.some((r) => (!r.dirOnly || isDir) && r.match(relText));
}

/** A path to `name` inside an open folder: the folder is reached through its descriptor, never by path. */
export function atFd(dirFd: number, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), name]);
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/**
 * Opens a folder the listing saw as `seen` (lstat), without following a symlink, and checks
 * that the open folder is that one (dev/ino): a folder swapped for a symlink or another folder
 * since is refused, never followed. Returns the fd, or the problem code (ECHANGED: swapped).
 */
function openSeenDir(path: Buffer, seen: BigIntStats): number | string {
  let fd: number;
  try {
    fd = openSync(path, DIR_FLAGS);
  } catch (err) {
    const code = errnoCode(err) ?? 'EIO';
    return code === 'ELOOP' || code === 'ENOTDIR' ? 'ECHANGED' : code;
  }
  const st = fstatSync(fd, { bigint: true });
  if (st.dev !== seen.dev || st.ino !== seen.ino) {
    closeSync(fd);
    return 'ECHANGED';
  }
  return fd;
}

/**
 * Walks `root`: first the root itself, then everything below it, depth first. lstat of the root
 * may throw. Below the root, `abs` of an entry is /proc/self/fd/N/name, N being its verified open
 * parent: valid while the caller handles the entry (before it asks for the next one), so every
 * open, readlink or unlink a caller makes goes through the folder the walk checked.
 */
export function walk(root: string | Buffer, opts?: WalkOptions & { leave?: false }): Generator<WalkEvent>;
export function walk(root: string | Buffer, opts: WalkOptions & { leave: true }): Generator<WalkEvent | WalkLeave>;
export function* walk(root: string | Buffer, opts: WalkOptions = {}): Generator<WalkEvent | WalkLeave> {
  const rootBuf = typeof root === 'string' ? Buffer.from(root) : root;
  const rootSt = lstatSync(rootBuf, { bigint: true });
  yield { type: 'entry', rel: Buffer.alloc(0), abs: rootBuf, st: rootSt, kind: kindOf(rootSt) };
  if (!rootSt.isDirectory()) return;
  const fd = openSeenDir(rootBuf, rootSt);
  if (typeof fd === 'string') {
    yield { type: 'problem', rel: Buffer.alloc(0), abs: rootBuf, code: fd, dir: true };
    return;
  }
  yield* walkBelow({ rel: Buffer.alloc(0), abs: rootBuf, fd }, opts);
  if (opts.leave) yield { type: 'leave', rel: Buffer.alloc(0), abs: rootBuf };
}

function* walkBelow(dir: { rel: Buffer; abs: Buffer; fd: number }, opts: WalkOptions): Generator<WalkEvent | WalkLeave> {
  try {
    let names: Buffer[];
    try {
      names = readdirSync(`/proc/self/fd/${dir.fd}`, { encoding: 'buffer' });
    } catch (err) {
      yield { type: 'problem', rel: dir.rel, abs: dir.abs, code: errnoCode(err) ?? 'EIO', dir: true };
      return;
    }
    names.sort(Buffer.compare);
    const at = Buffer.from(`/proc/self/fd/${dir.fd}/`);
    for (const name of names) {
      const rel = child(dir.rel, name);
      const abs = Buffer.concat([at, name]);
      let st: BigIntStats;
      try {
        st = lstatSync(abs, { bigint: true });
      } catch (err) {
        yield { type: 'problem', rel, abs, code: errnoCode(err) ?? 'EIO', dir: false };
        continue;
      }
      const kind = kindOf(st);
      if (opts.exclude?.(rel.toString('utf8'), kind === 'd')) continue;
      if (kind === 'd' && opts.skipDir?.(st, rel)) continue;
      if (kind !== 'd') {
        yield { type: 'entry', rel, abs, st, kind };
        continue;
      }
      // A folder is opened (and checked to be the one listed) before it is reported at all.
      const fd = openSeenDir(abs, st);
      if (typeof fd === 'string') {
        yield { type: 'problem', rel, abs, code: fd, dir: true };
        continue;
      }
      let opened = true;
      try {
        yield { type: 'entry', rel, abs, st, kind };
        // Depth first: a folder's contents come right after it, before its next sibling.
        opened = false;
        yield* walkBelow({ rel, abs, fd }, opts);
        if (opts.leave) yield { type: 'leave', rel, abs };
      } finally {
        if (opened) closeSync(fd);
      }
    }
  } finally {
    closeSync(dir.fd);
  }
}

/**
 * Removes a file or a whole tree without following a symlink and without whole paths: the walk
 * goes bottom up through its open folders, so a tree deeper than PATH_MAX goes too (Node's
 * fs.rm cannot remove one). Nothing there: nothing to do.
 */
export function removeTree(path: string | Buffer): void {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) {
    unlinkSync(path);
    return;
  }
  for (const ev of walk(path, { leave: true })) {
    if (ev.type === 'problem') {
      if (ev.code === 'ENOENT') continue;
      throw Object.assign(new Error(`cannot remove ${Buffer.concat([Buffer.from(String(path)), SLASH, ev.rel]).toString('utf8')} (${ev.code})`), { code: ev.code });
    }
    if (ev.type === 'leave') rmdirSync(ev.abs);
    else if (ev.kind !== 'd') unlinkSync(ev.abs);
  }
}

/**
 * Reaches paths below a root one open folder at a time, as the walk does (O_NOFOLLOW, never a
 * whole path): a path longer than PATH_MAX works, and a symlink on the way is refused (ELOOP,
 * ENOTDIR), never followed. The folders of the last path stay open, so callers going in walk
 * (file list) order open each folder once.
 */
export class Beneath {
  private readonly rootFd: number;
  private readonly open: { name: Buffer; fd: number }[] = [];

  constructor(root: string | Buffer) {
    this.rootFd = openSync(root, DIR_FLAGS);
  }

  /** The open folder `rel` ('/'-separated below the root; empty: the root): valid until the next call. */
  dir(rel: Buffer): number {
    const parts: Buffer[] = [];
    for (let start = 0; start < rel.length; ) {
      const slash = rel.indexOf(0x2f, start);
      const end = slash < 0 ? rel.length : slash;
      if (end > start) parts.push(rel.subarray(start, end));
      start = end + 1;
    }
    let keep = 0;
    while (keep < this.open.length && keep < parts.length && this.open[keep]!.name.equals(parts[keep]!)) keep++;
    while (this.open.length > keep) closeSync(this.open.pop()!.fd);
    for (let i = keep; i < parts.length; i++) {
      const parent = i === 0 ? this.rootFd : this.open[i - 1]!.fd;
      const name = Buffer.from(parts[i]!);
      this.open.push({ name, fd: openSync(atFd(parent, name), DIR_FLAGS) });
    }
    return parts.length === 0 ? this.rootFd : this.open[parts.length - 1]!.fd;
  }

  /** A short path to `rel` through its open parent folder (/proc/self/fd/N/name): valid until the next call. */
  path(rel: Buffer): Buffer {
    const slash = rel.lastIndexOf(0x2f);
    return slash < 0 ? atFd(this.rootFd, rel) : atFd(this.dir(rel.subarray(0, slash)), rel.subarray(slash + 1));
  }

  close(): void {
    while (this.open.length > 0) closeSync(this.open.pop()!.fd);
    closeSync(this.rootFd);
  }
}
