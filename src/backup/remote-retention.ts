/**
 * Remote retention, after a successful upload: complete remote snapshots older than
 * BACKUP_REMOTE_RETENTION_DAYS are deleted, never the newest complete one; incomplete remote
 * snapshots (no manifest: an interrupted upload) that are not pending locally are removed.
 */
import type { JobContext } from './jobs.js';
import type { Remote } from './remote.js';
import type { BackupRecords } from './records.js';
import { idTime } from './layout.js';

export interface RemotePrunePlan {
  delete: { id: string; why: string }[];
  keep: string[];
}

export async function planRemotePrune(remote: Remote, records: BackupRecords, days: number, now: number): Promise<RemotePrunePlan> {
  const ids = await remote.listIds();
  const pending = new Set((await records.allRemote()).filter((r) => r.state === 'pending').map((r) => r.id));
  const complete: string[] = [];
  const plan: RemotePrunePlan = { delete: [], keep: [] };
  for (const id of ids) {
    if (await remote.isComplete(id)) complete.push(id);
    else if (!pending.has(id)) plan.delete.push({ id, why: 'incomplete (interrupted upload)' });
  }
  const newest = complete[complete.length - 1];
  const cutoff = now - days * 86_400_000;
  for (const id of complete) {
    if (id !== newest && idTime(id) < cutoff) plan.delete.push({ id, why: `older than ${days} day(s)` });
    else plan.keep.push(id);
  }
  return plan;
}

export async function pruneRemote(ctx: JobContext, remote: Remote, records: BackupRecords, dryRun = false): Promise<RemotePrunePlan> {
  const plan = await planRemotePrune(remote, records, ctx.cfg.BACKUP_REMOTE_RETENTION_DAYS, Date.now());
  if (dryRun) return plan;
  for (const d of plan.delete) {
    await remote.deleteSnapshot(d.id);
    const rec = await records.remote(d.id);
    if (rec?.state === 'uploaded') await records.setRemote({ ...rec, state: 'skipped', lastError: `deleted from remote: ${d.why}` });
    ctx.out.info(`remote retention: deleted ${d.id} (${d.why})`);
  }
  return plan;
}
