/**
 * Retention as a pure planner: (catalog, policy, now) -> plan. It never deletes, for any
 * source, the newest backup that holds that source complete (a source missing for many nights
 * keeps its last copy), never a snapshot whose upload is pending, and nothing at all while some
 * snapshot is recorded as finished later than now (the clock jumped back: ages cannot be
 * trusted, and the real snapshots must not lose to one from the future). Ages are measured
 * from the recorded finish time. Only nightly and snapshot runs apply it (never a capture).
 * Deletion renames to a hidden trash name first, so a snapshot disappears at once and whole.
 */
import { promises as fs } from 'node:fs';
import { join, dirname } from 'node:path';
import { leftovers } from './layout.js';
import { removeTree } from './walk.js';
import { byFinishDesc, fromFuture, isBackup, latestOf, type Catalog, type CatalogEntry } from './catalog.js';

export interface RetentionPolicy {
  /** nightly and snapshot runs older than this go */
  days: number;
  /** pre-restore captures older than this go */
  preRestoreDays: number;
}

export interface RetentionPlan {
  delete: { id: string; why: string }[];
  keep: { id: string; why: string }[];
  /** set when the planner refused to delete anything, with the reason */
  refused?: string;
}

const DAY = 86_400_000;

export function planRetention(catalog: Catalog, policy: RetentionPolicy, now: number): RetentionPlan {
  const plan: RetentionPlan = { delete: [], keep: [] };
  const future = catalog.filter((e) => fromFuture(e, now)).sort(byFinishDesc);
  if (future.length) {
    const f = future[0]!;
    plan.refused = `snapshot ${f.id} is recorded as finished at ${new Date(f.finishedAt).toISOString()}, later than now (${new Date(now).toISOString()}): the clock moved back; retention deletes nothing until the clock passes that time (check the host clock / NTP)`;
    plan.keep = catalog.map((e) => ({ id: e.id, why: 'prune refused: a snapshot is from the future' }));
    return plan;
  }
  const protectedWhy = new Map<string, string>();
  const backups = catalog.filter((e) => isBackup(e) && !e.damaged).sort(byFinishDesc);
  const sources = new Set(backups.flatMap((e) => Object.keys(e.sources)));
  for (const s of [...sources].sort()) {
    const newest = backups.find((e) => e.sources[s] === 'complete');
    if (newest && !protectedWhy.has(newest.id)) protectedWhy.set(newest.id, `newest complete copy of ${s}`);
  }
  const latest = latestOf(catalog, now);
  if (latest && !protectedWhy.has(latest.id)) protectedWhy.set(latest.id, 'latest');
  if (backups[0] && !protectedWhy.has(backups[0].id)) protectedWhy.set(backups[0].id, 'newest snapshot');
  for (const e of catalog) {
    const days = isBackup(e) ? policy.days : policy.preRestoreDays;
    const why = protectedWhy.get(e.id) ?? (now - e.finishedAt <= days * DAY ? `younger than ${days} day(s)` : e.remote === 'pending' ? 'remote upload still pending' : undefined);
    if (why) plan.keep.push({ id: e.id, why });
    else plan.delete.push({ id: e.id, why: `older than ${days} day(s)${e.damaged ? ' (manifest unreadable)' : ''}` });
  }
  return plan;
}

/** A catalog entry's display word, for log lines. */
export const what = (e: Pick<CatalogEntry, 'kind'>) => (e.kind === 'emergency-pre-restore' ? 'pre-restore capture' : 'snapshot');

export async function removeSnapshotDir(dir: string): Promise<void> {
  const trash = join(dirname(dir), `.trash-${dir.split('/').pop()}-${process.pid}`);
  await fs.rename(dir, trash);
  removeTree(trash); // through open folders: a tree deeper than PATH_MAX goes too (fs.rm cannot)
}

/** Removes temp and trash folders left by crashed runs (caller holds the backup lock). */
export async function cleanLeftovers(parents: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const parent of parents) {
    for (const path of await leftovers(parent)) {
      removeTree(path);
      removed.push(path);
    }
  }
  return removed;
}

