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
  /** things the operator was told once that are not failures (issue 12: copy fallback, prune left to the prune job) */
  notes?: string[];
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
  /** bytes the remote copy stores (every object: files, manifest, file list) */
  storedBytes?: number;
  bucket?: string;
}

/** A record of a snapshot that went up and was later removed by remote retention. */
export const deletedFromRemote = (r: RemoteRecord) => r.state === 'skipped' && (r.lastError ?? '').startsWith('deleted from remote');

/** What an unreadable remote record counts as: pending since the snapshot's time ("unknown" must never read as "never meant to go up"). */
function unreadable(id: string): RemoteRecord {
  const since = idTime(id);
  return { id, state: 'pending', attempts: 0, ...(Number.isFinite(since) ? { pendingSince: new Date(since).toISOString() } : {}), lastError: 'remote record is unreadable; the next backup run rebuilds it' };
}

const STATES = new Set(['pending', 'uploaded', 'skipped']);
const isRemoteRecord = (v: unknown): boolean => isObject(v) && typeof v.id === 'string' && STATES.has(v.state as string);

export class BackupRecords {
  private readonly paths;
  /** false: repairs (sets aside, rebuilds) corrupt records; only runs that hold the backup lock may */
  private readonly readOnly: boolean;

  /**
   * `readOnly`: for readers without the backup lock (status, list). They report a corrupt record
   * and count it as pending, but never write: a repair racing a backup run could overwrite or
   * move aside the record that run has just written.
   */
  constructor(
    root: string,
    private readonly report: Reporter,
    opts: { readOnly?: boolean } = {},
  ) {
    this.paths = statePaths(root);
    this.readOnly = opts.readOnly ?? false;
  }

  async writeRun(rec: RunRecord): Promise<void> {
    await writeJsonAtomic(this.paths.backupLastRun, rec);
    if (rec.status !== 'failed' && (rec.kind === 'nightly' || rec.kind === 'snapshot')) await writeJsonAtomic(this.paths.backupLastSuccess, rec);
    await appendLines(this.paths.backupRuns, [JSON.stringify(rec)]);
  }

  /**
   * Since when the remote has been behind: the finish time of the oldest nightly/snapshot whose
   * upload is pending, or that was skipped (cannot be uploaded) after the newest one that went
   * up. Captures do not count. A run whose own snapshot is skipped leaves the remote as stale as
   * a failed upload does, so the health check must see it the same way.
   */
  async remotePendingSince(): Promise<string | undefined> {
    const backups = (await this.allRemote()).filter((r) => r.kind !== 'emergency-pre-restore');
    const time = (r: RemoteRecord) => (r.pendingSince ? Date.parse(r.pendingSince) : idTime(r.id));
    const newestUp = Math.max(-Infinity, ...backups.filter((r) => r.state === 'uploaded').map(time).filter(Number.isFinite));
    const behind = backups.filter((r) => r.state === 'pending' || (r.state === 'skipped' && !deletedFromRemote(r) && time(r) > newestUp));
    const times = behind.map(time).filter(Number.isFinite);
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
    return readJsonState<RunRecord>(this.paths.backupLastRun, this.report, isObject, { repair: !this.readOnly });
  }

  lastSuccess(): Promise<RunRecord | undefined> {
    return readJsonState<RunRecord>(this.paths.backupLastSuccess, this.report, isObject, { repair: !this.readOnly });
  }

  remotePath(id: string): string {
    return join(this.paths.backupRemote, `${id}.json`);
  }

  /**
   * A snapshot's remote record. One that exists but cannot be read (a torn write, a bad sector)
   * is set aside and rebuilt as pending: "unknown" must never read as "never meant to go up",
   * or retention would delete a snapshot that may never have reached the remote. The next
   * upload round finds out (an identical complete remote copy is simply marked uploaded).
   */
  async remote(id: string): Promise<RemoteRecord | undefined> {
    const path = this.remotePath(id);
    const existed = await fs.lstat(path).then(
      () => true,
      () => false,
    );
    const rec = await readJsonState<RemoteRecord>(path, this.report, isRemoteRecord, { repair: !this.readOnly });
    if (rec || !existed) return rec;
    return this.readOnly ? unreadable(id) : this.rebuildPending(id); // read-only: readJsonState has reported it
  }

  private async rebuildPending(id: string): Promise<RemoteRecord> {
    if (this.readOnly) {
      this.report(`remote record of ${id} was set aside as corrupt and not rebuilt yet; counted as pending here (the next backup run rebuilds it)`);
      return unreadable(id);
    }
    const rebuilt: RemoteRecord = { ...unreadable(id), lastError: 'remote record was unreadable; rebuilt as pending' };
    await this.setRemote(rebuilt);
    this.report(`remote record of ${id} was unreadable; counting the snapshot as pending upload until the next upload round checks it`);
    return rebuilt;
  }

  async setRemote(rec: RemoteRecord): Promise<void> {
    await writeJsonAtomic(this.remotePath(rec.id), rec);
  }

  /** Forgets a snapshot's remote record, and any corrupt copy of it set aside. */
  async removeRemote(id: string): Promise<void> {
    await fs.rm(this.remotePath(id), { force: true });
    const names = await fs.readdir(this.paths.backupRemote).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(`${id}.json.corrupt-`)) await fs.rm(join(this.paths.backupRemote, n), { force: true });
  }

  async allRemote(): Promise<RemoteRecord[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.paths.backupRemote);
    } catch {
      return [];
    }
    // A record set aside as corrupt by an earlier reader, with none in its place, is rebuilt too.
    const ids = new Set<string>();
    for (const n of names) {
      const m = /^(\d{8}-\d{6})\.json(?:\.corrupt-.*)?$/.exec(n);
      if (m) ids.add(m[1]!);
    }
    const out: RemoteRecord[] = [];
    for (const id of [...ids].sort()) {
      const r = names.includes(`${id}.json`) ? await this.remote(id) : await this.rebuildPending(id);
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
