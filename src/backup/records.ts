/**
 * Run records and per-snapshot remote state, in the state folder (never inside a snapshot:
 * a completed snapshot's folder must not change). l2health reads the last-success record:
 * only nightly and snapshot runs are successes (never a pre-restore capture), and it carries
 * `remotePendingSince` while a backup's remote copy is pending, so the health check can turn
 * DOWN when that lasts longer than BACKUP_MAX_AGE_HOURS.
 */
import { join } from 'node:path';
import { promises as fs } from 'node:fs';
import { appendLines, isObject, readJsonState, writeJsonAtomic, type Reporter } from '../state/files.js';
import { statePaths } from '../state/paths.js';
import { idTime } from './layout.js';

export interface RunRecord {
  command: string;
  /** 'pending': the local snapshot is complete, its remote copy is not (upload failed) */
  status: 'ok' | 'partial' | 'pending' | 'failed';
  startedAt: string;
  finishedAt: string;
  id?: string;
  kind?: string;
  files?: number;
  bytes?: number;
  newBytes?: number;
  durationMs: number;
  remote?: string;
  /** finish time of the oldest backup whose remote copy is still pending */
  remotePendingSince?: string;
  error?: string;
  warnings?: number;
}

export type RemoteState = 'pending' | 'uploaded' | 'skipped';

export interface RemoteRecord {
  id: string;
  state: RemoteState;
  kind?: string;
  /** when the snapshot became pending: its finish time */
  pendingSince?: string;
  attempts: number;
  lastAttemptAt?: string;
  lastError?: string;
  uploadedAt?: string;
  bytesSent?: number;
  objectsCopied?: number;
  objectsUploaded?: number;
  bucket?: string;
}

export class BackupRecords {
  private readonly paths;

  constructor(
    root: string,
    private readonly report: Reporter,
  ) {
    this.paths = statePaths(root);
  }

  async writeRun(rec: RunRecord): Promise<void> {
    await writeJsonAtomic(this.paths.backupLastRun, rec);
    if (rec.status !== 'failed' && (rec.kind === 'nightly' || rec.kind === 'snapshot')) await writeJsonAtomic(this.paths.backupLastSuccess, rec);
    await appendLines(this.paths.backupRuns, [JSON.stringify(rec)]);
  }

  /** Finish time of the oldest nightly/snapshot whose upload is pending (captures do not count). */
  async remotePendingSince(): Promise<string | undefined> {
    const pending = (await this.allRemote()).filter((r) => r.state === 'pending' && r.kind !== 'emergency-pre-restore');
    const times = pending.map((r) => (r.pendingSince ? Date.parse(r.pendingSince) : idTime(r.id))).filter(Number.isFinite);
    return times.length ? new Date(Math.min(...times)).toISOString() : undefined;
  }

  /** After uploads outside a backup run (l2backup upload), the last success says what is still pending. */
  async refreshRemotePending(): Promise<void> {
    const last = await this.lastSuccess();
    if (!last) return;
    const since = await this.remotePendingSince();
    if (since === last.remotePendingSince) return;
    const { remotePendingSince: _drop, ...rest } = last;
    await writeJsonAtomic(this.paths.backupLastSuccess, since ? { ...rest, remotePendingSince: since } : rest);
  }

  lastRun(): Promise<RunRecord | undefined> {
    return readJsonState<RunRecord>(this.paths.backupLastRun, this.report, isObject);
  }

  lastSuccess(): Promise<RunRecord | undefined> {
    return readJsonState<RunRecord>(this.paths.backupLastSuccess, this.report, isObject);
  }

  remotePath(id: string): string {
    return join(this.paths.backupRemote, `${id}.json`);
  }

  remote(id: string): Promise<RemoteRecord | undefined> {
    return readJsonState<RemoteRecord>(this.remotePath(id), this.report, isObject);
  }

  async setRemote(rec: RemoteRecord): Promise<void> {
    await writeJsonAtomic(this.remotePath(rec.id), rec);
  }

  async removeRemote(id: string): Promise<void> {
    await fs.rm(this.remotePath(id), { force: true });
  }

  async allRemote(): Promise<RemoteRecord[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.paths.backupRemote);
    } catch {
      return [];
    }
    const out: RemoteRecord[] = [];
    for (const n of names.filter((n) => n.endsWith('.json')).sort()) {
      const r = await this.remote(n.slice(0, -5));
      if (r) out.push(r);
    }
    return out;
  }

  verifyPath(id: string): string {
    return join(this.paths.backupVerify, `${id}.json`);
  }

  async writeVerify(id: string, result: unknown): Promise<void> {
    await writeJsonAtomic(this.verifyPath(id), result);
  }
}
