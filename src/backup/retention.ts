/**
 * Retention. Local: snapshots older than the retention are deleted only after a new snapshot
 * completed, never the newest complete one, never one whose remote upload is still pending.
 * Deletion renames to a hidden trash name first, so a snapshot disappears at once and whole.
 */
import { promises as fs } from 'node:fs';
import { join, dirname } from 'node:path';
import { idTime, leftovers, type LocalSnapshotRef } from './layout.js';

export interface PrunePlan {
  delete: LocalSnapshotRef[];
  keep: { ref: LocalSnapshotRef; why: string }[];
}

/** `protectNewest` is false for pre-restore captures: they are not backups to fall back on. */
export function planLocalPrune(snaps: LocalSnapshotRef[], days: number, now: number, pending: Set<string>, protectNewest = true): PrunePlan {
  const plan: PrunePlan = { delete: [], keep: [] };
  const newest = snaps[snaps.length - 1];
  const cutoff = now - days * 86_400_000;
  for (const ref of snaps) {
    if (ref === newest && protectNewest) plan.keep.push({ ref, why: 'newest complete snapshot' });
    else if (idTime(ref.id) >= cutoff) plan.keep.push({ ref, why: `younger than ${days} day(s)` });
    else if (pending.has(ref.id)) plan.keep.push({ ref, why: 'remote upload still pending' });
    else plan.delete.push(ref);
  }
  return plan;
}

export async function removeSnapshotDir(dir: string): Promise<void> {
  const trash = join(dirname(dir), `.trash-${dir.split('/').pop()}-${process.pid}`);
  await fs.rename(dir, trash);
  await fs.rm(trash, { recursive: true, force: true });
}

/** Removes temp and trash folders left by crashed runs (caller holds the backup lock). */
export async function cleanLeftovers(parents: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const parent of parents) {
    for (const path of await leftovers(parent)) {
      await fs.rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

