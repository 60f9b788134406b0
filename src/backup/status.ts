/**
 * What `l2backup status` and `l2backup list` report, gathered from the volume and state files.
 * They hold no lock, so they only read: a corrupt record is reported, never repaired here.
 */
import { promises as fs } from 'node:fs';
import type { Config } from '../config/index.js';
import { lockHolder } from '../state/lock.js';
import { listLocal } from './layout.js';
import { readManifest } from './manifest.js';
import { BackupRecords, type RunRecord } from './records.js';
import { remoteSettings } from './remote.js';
import { statePaths } from '../state/paths.js';
import { readLastDrill, type DrillRecord } from './drill-record.js';

export interface LocalRow {
  id: string;
  kind: string;
  files: number;
  bytes: number;
  newBytes: number;
  createdAt: string;
  preRestore: boolean;
  partial: boolean;
  remote: string;
  error?: string;
}

export async function localRows(cfg: Config, report: (m: string) => void): Promise<LocalRow[]> {
  const records = new BackupRecords(cfg.BACKUP_ROOT, report, { readOnly: true });
  const remote = new Map((await records.allRemote()).map((r) => [r.id, r]));
  const rows: LocalRow[] = [];
  for (const ref of await listLocal(cfg.BACKUP_ROOT, true)) {
    const r = remote.get(ref.id);
    try {
      const m = await readManifest(ref.dir);
      rows.push({
        id: ref.id,
        kind: m.kind,
        files: m.totals.files,
        bytes: m.totals.bytes,
        newBytes: m.totals.newBytes,
        createdAt: m.finishedAt,
        preRestore: ref.preRestore,
        partial: m.sources.some((s) => s.status !== 'ok'),
        remote: r ? r.state : '-',
      });
    } catch (err) {
      rows.push({ id: ref.id, kind: '?', files: 0, bytes: 0, newBytes: 0, createdAt: '', preRestore: ref.preRestore, partial: true, remote: r?.state ?? '-', error: (err as Error).message });
    }
  }
  return rows;
}

export interface BackupStatus {
  root: string;
  lastRun: RunRecord | null;
  lastSuccess: RunRecord | null;
  snapshots: LocalRow[];
  /** pendingSince: finish time of the oldest backup whose remote copy is pending ("local ok, remote pending since ...") */
  remote: { configured: boolean; url: string | null; pending: string[]; pendingSince: string | null; skipped: string[]; uploaded: number; lastError: string | null };
  disk: { freeBytes: number; totalBytes: number } | null;
  lock: { pid: number; host: string; command: string; startedAt: string; stale?: string } | null;
  /** the last `l2backup drill` (restore test): when, from where, result, restore time, bytes, files */
  lastDrill: DrillRecord | null;
}

export async function backupStatus(cfg: Config, report: (m: string) => void): Promise<BackupStatus> {
  const records = new BackupRecords(cfg.BACKUP_ROOT, report, { readOnly: true });
  const remoteRecs = await records.allRemote();
  const settings = remoteSettings(cfg);
  let disk: BackupStatus['disk'] = null;
  try {
    const s = await fs.statfs(cfg.BACKUP_ROOT);
    disk = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {}
  // jobs.ts's backupLockPath, without loading the backup engine behind it (status start-up).
  const holder = lockHolder(statePaths(cfg.BACKUP_ROOT).lock('backup'));
  const pendingRecs = remoteRecs.filter((r) => r.state === 'pending');
  return {
    root: cfg.BACKUP_ROOT,
    lastRun: (await records.lastRun()) ?? null,
    lastSuccess: (await records.lastSuccess()) ?? null,
    snapshots: await localRows(cfg, report),
    remote: {
      configured: Boolean(settings),
      url: settings ? `s3://${settings.bucket}${settings.prefix ? '/' + settings.prefix : ''}/snapshots/` : null,
      pending: pendingRecs.map((r) => r.id),
      pendingSince: (await records.remotePendingSince()) ?? null,
      skipped: remoteRecs.filter((r) => r.state === 'skipped' && r.lastError && !r.lastError.startsWith('deleted from remote')).map((r) => r.id),
      uploaded: remoteRecs.filter((r) => r.state === 'uploaded').length,
      lastError: pendingRecs.find((r) => r.lastError)?.lastError ?? null,
    },
    disk,
    lastDrill: (await readLastDrill(cfg.BACKUP_ROOT, report)) ?? null,
    lock: holder ? { pid: holder.pid, host: holder.host, command: holder.command, startedAt: holder.startedAt, ...(holder.stale ? { stale: holder.stale } : {}) } : null,
  };
}
