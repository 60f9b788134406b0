/**
 * Remote retention, after a successful upload round: the same pure planner as local retention
 * over the remote catalog (complete remote snapshots and their recorded finish times), with
 * BACKUP_REMOTE_KEEP (or BACKUP_REMOTE_RETENTION_DAYS). Incomplete remote snapshots (no manifest: an interrupted or
 * skipped upload) that are not pending locally are removed.
 */
import type { JobContext } from './jobs.js';
import { DeleteDeniedError, LockedError, type Remote } from './remote.js';
import type { BackupRecords } from './records.js';
import { remoteCatalog } from './catalog.js';
import { planRetention, type Decision, type RetentionPolicy } from './retention.js';
import { MANIFEST, listLocal } from './layout.js';

export interface RemotePrunePlan {
  delete: Decision[];
  keep: Decision[];
  refused?: string;
  /** planned deletes that object lock refused: kept, with the date the lock ends */
  locked?: { id: string; until?: string }[];
  /** the key may not delete: the deletes were left (to the prune job) */
  denied?: string;
}

/** Why an incomplete remote snapshot (no manifest, not pending here) is deleted. */
const INCOMPLETE = 'incomplete (interrupted or skipped upload)';

export async function planRemotePrune(remote: Remote, records: BackupRecords, policy: Omit<RetentionPolicy, 'preRestoreDays'>, now: number): Promise<RemotePrunePlan> {
  const { catalog, incomplete } = await remoteCatalog(remote);
  const pending = new Set((await records.allRemote()).filter((r) => r.state === 'pending').map((r) => r.id));
  const plan = planRetention(catalog, { ...policy, preRestoreDays: policy.days }, now);
  const uploading = incomplete.filter((id) => pending.has(id)).map((id) => ({ id, why: 'upload in progress (pending)', reasons: ['upload in progress (pending)'] }));
  // A refusing planner (the clock moved back) deletes nothing at all: incomplete snapshots wait too.
  const stray = incomplete.filter((id) => !pending.has(id));
  const refusedWhy = 'prune refused: a snapshot is from the future';
  return {
    delete: [...(plan.refused ? [] : stray.map((id) => ({ id, why: INCOMPLETE, reasons: [] }))), ...plan.delete],
    keep: [...plan.keep, ...uploading, ...(plan.refused ? stray.map((id) => ({ id, why: refusedWhy, reasons: [refusedWhy] })) : [])],
    ...(plan.refused ? { refused: plan.refused } : {}),
  };
}

/** The remote policy from the settings: BACKUP_REMOTE_KEEP wins over BACKUP_REMOTE_RETENTION_DAYS. */
export const remotePolicy = (cfg: JobContext['cfg']) => ({ days: cfg.BACKUP_REMOTE_RETENTION_DAYS, ...(cfg.BACKUP_REMOTE_KEEP ? { keep: cfg.BACKUP_REMOTE_KEEP } : {}) });

export async function pruneRemote(ctx: JobContext, remote: Remote, records: BackupRecords, dryRun = false): Promise<RemotePrunePlan> {
  const plan = await planRemotePrune(remote, records, remotePolicy(ctx.cfg), Date.now());
  if (plan.refused) ctx.out.warn(`remote retention: ${plan.refused}`);
  if (dryRun) {
    // The real prune keeps what object lock holds ("locked until ..."): so does the dry run. The
    // manifest is written last, so its lock ends last (an incomplete snapshot has none to ask).
    for (const d of plan.delete) {
      if (d.why === INCOMPLETE) continue;
      const until = await remote.lockedUntil(remote.key(d.id, MANIFEST));
      if (until) (plan.locked ??= []).push({ id: d.id, until });
    }
    return plan;
  }
  const local = new Set((await listLocal(ctx.cfg.BACKUP_ROOT, true)).map((r) => r.id));
  // What was deleted (or found locked: the report shows those as kept); what a denied key left.
  const done: Decision[] = [];
  let left: Decision[] = [];
  for (const [i, d] of plan.delete.entries()) {
    try {
      await remote.deleteSnapshot(d.id);
    } catch (err) {
      // Object lock holds it (not a failure: the server does what it was asked to), or this key
      // may not delete at all (a least-privilege nightly key): nothing more to try this run.
      if (err instanceof LockedError) {
        (plan.locked ??= []).push({ id: d.id, until: err.until });
        done.push(d);
        ctx.out.info(`remote retention: kept ${d.id} (locked until ${err.until ?? 'a later date'})`);
        continue;
      }
      if (err instanceof DeleteDeniedError) {
        plan.denied = err.message;
        left = plan.delete.slice(i);
        break;
      }
      throw err;
    }
    done.push(d);
    const rec = await records.remote(d.id);
    // Gone on both sides: nothing left to remember (kept only while the id lives somewhere).
    if (rec && !local.has(d.id)) await records.removeRemote(d.id);
    else if (rec?.state === 'uploaded') await records.setRemote({ ...rec, state: 'skipped', lastError: `deleted from remote: ${d.why}` });
    ctx.out.info(`remote retention: deleted ${d.id} (${d.why})`);
  }
  const notDeleted = left.map((d) => ({ id: d.id, why: `not deleted: ${plan.denied}`, reasons: [`not deleted: ${plan.denied}`] }));
  return { ...plan, delete: done, keep: [...plan.keep, ...notDeleted] };
}
