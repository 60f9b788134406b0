/**
 * The one walker (snapshot, verify, cleanup-logs). Depth first, each folder's names sorted
 * bytewise, so every caller sees the same fixed order (the order of the file list). Names are
 * raw bytes (Buffers): a name with a newline or bytes that are not UTF-8 is walked like any
 * other. Symlinks are listed, never followed. A folder that cannot be read, or an entry that
 * vanishes between readdir and lstat, is reported as a problem event and the walk goes on.
 */
import { readdirSync, lstatSync, type BigIntStats } from 'node:fs';
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
  /** errno code; ENOENT: vanished during the walk */
  code: string;
  /** true for a folder whose contents could not be listed */
  dir: boolean;
}

export type WalkEvent = WalkEntry | WalkProblem;

export interface WalkOptions {
  /** true: leave this entry (and a folder's whole subtree) out */
  exclude?: (relText: string, isDir: boolean) => boolean;
  /** true: a folder to step over silently by its stat (BACKUP_ROOT bound inside a source) */
  skipDir?: (st: BigIntStats, rel: Buffer) => boolean;
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

/** Walks `root`: first the root itself, then everything below it, depth first. lstat of the root may throw. */
export function* walk(root: string | Buffer, opts: WalkOptions = {}): Generator<WalkEvent> {
  const rootBuf = typeof root === 'string' ? Buffer.from(root) : root;
  const rootSt = lstatSync(rootBuf, { bigint: true });
  yield { type: 'entry', rel: Buffer.alloc(0), abs: rootBuf, st: rootSt, kind: kindOf(rootSt) };
  if (rootSt.isDirectory()) yield* walkBelow({ rel: Buffer.alloc(0), abs: rootBuf }, opts);
}

function* walkBelow(dir: { rel: Buffer; abs: Buffer }, opts: WalkOptions): Generator<WalkEvent> {
  let names: Buffer[];
  try {
    names = readdirSync(dir.abs, { encoding: 'buffer' });
  } catch (err) {
    yield { type: 'problem', rel: dir.rel, abs: dir.abs, code: errnoCode(err) ?? 'EIO', dir: true };
    return;
  }
  names.sort(Buffer.compare);
  for (const name of names) {
    const rel = child(dir.rel, name);
    const abs = Buffer.concat([dir.abs, SLASH, name]);
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
    yield { type: 'entry', rel, abs, st, kind };
    // Depth first: a folder's contents come right after it, before its next sibling.
    if (kind === 'd') yield* walkBelow({ rel, abs }, opts);
  }
}
