/**
 * Retention as a pure planner: (catalog, policy, now) -> plan, every decision with its reasons. It never deletes, for any
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
import { applyKeepPolicy } from './keep.js';
import type { KeepPolicy } from '../config/keep-policy.js';

export interface RetentionPolicy {
  /** BACKUP_*_RETENTION_DAYS: nightly and snapshot runs older than this (from now) go, unless `keep` is set */
  days: number;
  /** pre-restore captures older than this go (always by age) */
  preRestoreDays: number;
  /** BACKUP_*_KEEP: a restic-style calendar policy for nightly and snapshot runs; wins over `days` */
  keep?: KeepPolicy;
}

export interface Decision {
  id: string;
  /** every reason, joined: "daily 2026-11-20, weekly 2026-W47" or "older than 3 day(s)" */
  why: string;
  /** kept: the policy's reasons then the safety rules' (empty for a delete) */
  reasons: string[];
}

export interface RetentionPlan {
  delete: Decision[];
  keep: Decision[];
  /** set when the planner refused to delete anything, with the reason */
  refused?: string;
}

/** The safety rule that keeps a snapshot whose remote copy has not gone up yet. */
export const PENDING = 'remote upload still pending';

const DAY = 86_400_000;

/**
 * `inUse`: ids some reader is using (a restore, a drill), with the reason to show ("in use by
 * restore"); never deleted. The safety rules (newest complete copy of each source, latest,
 * pending upload, in use) hold whatever the policy says.
 */
export function planRetention(catalog: Catalog, policy: RetentionPolicy, now: number, inUse: ReadonlyMap<string, string> = new Map()): RetentionPlan {
  const plan: RetentionPlan = { delete: [], keep: [] };
  const future = catalog.filter((e) => fromFuture(e, now)).sort(byFinishDesc);
  if (future.length) {
    const f = future[0]!;
    plan.refused = `snapshot ${f.id} is recorded as finished at ${new Date(f.finishedAt).toISOString()}, later than now (${new Date(now).toISOString()}): the clock moved back; retention deletes nothing until the clock passes that time (check the host clock / NTP)`;
    const why = 'prune refused: a snapshot is from the future';
    plan.keep = catalog.map((e) => ({ id: e.id, why, reasons: [why] }));
    return plan;
  }
  const safety = safetyReasons(catalog, now, inUse);
  const byPolicy = policyReasons(catalog, policy, now);
  for (const e of catalog) {
    const reasons = [...(byPolicy.get(e.id) ?? []), ...(safety.get(e.id) ?? [])];
    if (reasons.length) plan.keep.push({ id: e.id, why: reasons.join(', '), reasons });
    else {
      const rule = isBackup(e) && policy.keep ? `not kept by ${policy.keep.text}` : `older than ${isBackup(e) ? policy.days : policy.preRestoreDays} day(s)`;
      plan.delete.push({ id: e.id, why: `${rule}${e.damaged ? ' (manifest unreadable)' : ''}`, reasons: [] });
    }
  }
  return plan;
}

/** The rules no policy overrides: one reason per protected snapshot for the first three, then pending and in use. */
function safetyReasons(catalog: Catalog, now: number, inUse: ReadonlyMap<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (id: string, why: string) => out.set(id, [...(out.get(id) ?? []), why]);
  const backups = catalog.filter((e) => isBackup(e) && !e.damaged).sort(byFinishDesc);
  const sources = new Set(backups.flatMap((e) => Object.keys(e.sources)));
  for (const s of [...sources].sort()) {
    const newest = backups.find((e) => e.sources[s] === 'complete');
    if (newest && !out.has(newest.id)) add(newest.id, `newest complete copy of ${s}`);
  }
  const latest = latestOf(catalog, now);
  if (latest && !out.has(latest.id)) add(latest.id, 'latest');
  if (backups[0] && !out.has(backups[0].id)) add(backups[0].id, 'newest snapshot');
  for (const e of catalog) {
    if (e.remote === 'pending') add(e.id, PENDING);
    const use = inUse.get(e.id);
    if (use) add(e.id, use);
  }
  return out;
}

/**
 * What the policy alone keeps. Captures: by age. Backups: by age from now (the old days rule),
 * or by the calendar policy (see keep.ts) over the readable backups newest first; a backup whose
 * manifest cannot be read fills no bucket (it would hide a good one) and is kept only by within.
 */
function policyReasons(catalog: Catalog, policy: RetentionPolicy, now: number): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const byAge = (e: CatalogEntry, days: number) => {
    if (now - e.finishedAt <= days * DAY) out.set(e.id, [`younger than ${days} day(s)`]);
  };
  for (const e of catalog) if (!isBackup(e) || !policy.keep) byAge(e, isBackup(e) ? policy.days : policy.preRestoreDays);
  if (!policy.keep) return out;
  const all = catalog.filter(isBackup).sort(byFinishDesc);
  const readable = all.filter((e) => !e.damaged);
  const latest = all[0]?.finishedAt;
  applyKeepPolicy(readable.map((e) => e.finishedAt), policy.keep, latest).forEach((r, i) => {
    if (r.length) out.set(readable[i]!.id, r);
  });
  const withinOnly = { text: policy.keep.text, ...(policy.keep.within ? { within: policy.keep.within } : {}) };
  const damaged = all.filter((e) => e.damaged);
  applyKeepPolicy(damaged.map((e) => e.finishedAt), withinOnly, latest).forEach((r, i) => {
    if (r.length) out.set(damaged[i]!.id, r);
  });
  return out;
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

