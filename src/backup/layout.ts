/**
 * The local repository on the backups volume:
 *   $BACKUP_ROOT/<id>/<source>/...          complete snapshots (what `ls -t` sees)
 *   $BACKUP_ROOT/<id>/.l2-manifest.json      summary (hidden: `cp -r <id>/*` copies only sources)
 *   $BACKUP_ROOT/<id>/.l2-files.jsonl.gz     one line per file, dir and symlink (gzip)
 *   $BACKUP_ROOT/.pre-restore/<id>/          emergency-pre-restore captures
 *   $BACKUP_ROOT/.tmp-<id>-<pid>/            a snapshot being built (renamed into place when complete)
 *   $BACKUP_ROOT/.trash-<id>-<pid>/          a snapshot being deleted
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { UsageError, errnoCode } from '../errors.js';

export const MANIFEST = '.l2-manifest.json';
export const FILES = '.l2-files.jsonl.gz';
export const PRE_RESTORE_DIR = '.pre-restore';
/** Temp files of an in-place restore (restore-copy.ts); a backup never stores them. */
export const RESTORE_TEMP_PREFIX = '.l2restore-';

const ID = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/;

export type SnapshotKind = 'nightly' | 'snapshot' | 'emergency-pre-restore';

export function isSnapshotId(id: string): boolean {
  return ID.test(id) && Number.isFinite(idTime(id));
}

/** The UTC time an id names, in ms; NaN for a non-id. */
export function idTime(id: string): number {
  const m = ID.exec(id);
  if (!m) return NaN;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const t = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
  const back = new Date(t);
  return back.getUTCMonth() === mo! - 1 && back.getUTCDate() === d! ? t : NaN;
}

export function idFor(time: number): string {
  const iso = new Date(time).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

/** Refuses anything that is not a snapshot id (`../etc`, `latest/..`, `/abs`). */
export function checkId(id: string): string {
  if (!isSnapshotId(id)) throw new UsageError(`"${id.slice(0, 60)}" is not a snapshot id: expected YYYYMMDD-HHMMSS (see 'l2backup list') or 'latest'`);
  return id;
}

export function snapshotDir(root: string, id: string, kind: SnapshotKind): string {
  return kind === 'emergency-pre-restore' ? join(root, PRE_RESTORE_DIR, id) : join(root, id);
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A fresh id: now, or the next free second, so two runs in one second never collide. `taken`:
 * ids known elsewhere (remote snapshots whose local copy is gone): after the clock moves back a
 * new snapshot must not take the id of one that lives only on the remote.
 */
export async function newId(root: string, now = Date.now(), taken: ReadonlySet<string> = new Set()): Promise<string> {
  for (let t = now; ; t += 1000) {
    const id = idFor(t);
    if (!taken.has(id) && !(await exists(join(root, id))) && !(await exists(join(root, PRE_RESTORE_DIR, id)))) return id;
  }
}

export interface LocalSnapshotRef {
  id: string;
  dir: string;
  preRestore: boolean;
}

/** Complete snapshots in a folder (those with a manifest), oldest first. */
export async function listSnapshotDirs(parent: string, preRestore: boolean): Promise<LocalSnapshotRef[]> {
  let names: string[];
  try {
    names = await fs.readdir(parent);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const out: LocalSnapshotRef[] = [];
  for (const name of names.filter(isSnapshotId).sort()) {
    const dir = join(parent, name);
    if (await exists(join(dir, MANIFEST))) out.push({ id: name, dir, preRestore });
  }
  return out;
}

export async function listLocal(root: string, includePreRestore = false): Promise<LocalSnapshotRef[]> {
  const main = await listSnapshotDirs(root, false);
  if (!includePreRestore) return main;
  const pre = await listSnapshotDirs(join(root, PRE_RESTORE_DIR), true);
  return [...main, ...pre].sort((a, b) => a.id.localeCompare(b.id));
}

/** Leftovers of crashed runs in a folder: temp and trash dirs. Only call while holding the backup lock. */
export async function leftovers(parent: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(parent);
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith('.tmp-') || n.startsWith('.trash-')).map((n) => join(parent, n));
}
