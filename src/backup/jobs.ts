/**
 * The backup jobs: nightly, snapshot and emergency-pre-restore. One run holds the backup lock,
 * cleans leftovers of crashed runs, builds the snapshot, uploads pending snapshots oldest first,
 * applies retention, writes the run record and raises one alert.
 */
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { secretValues } from '../config/index.js';
import type { Output } from '../output/index.js';
import { formatBytes, formatDuration } from '../output/index.js';
import { Alerter } from '../alert/index.js';
import { acquireLock } from '../state/lock.js';
import { statePaths } from '../state/paths.js';
import { EXIT, L2Error, errorMessage } from '../errors.js';
import { buildSnapshot } from './snapshot.js';
import { PRE_RESTORE_DIR, listLocal, listSnapshotDirs, newId, type SnapshotKind } from './layout.js';
import { readAllEntries, readManifest, type Manifest } from './manifest.js';
import { BackupRecords, type RunRecord } from './records.js';
import { Remote, remoteSettings } from './remote.js';
import { cleanLeftovers, planLocalPrune, removeSnapshotDir } from './retention.js';
import { pruneRemote } from './remote-retention.js';

export interface JobContext {
  cfg: Config;
  out: Output;
  signal: AbortSignal;
}

export function backupLockPath(cfg: Config): string {
  return statePaths(cfg.BACKUP_ROOT).lock('backup');
}

export async function withBackupLock<T>(ctx: JobContext, command: string, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(backupLockPath(ctx.cfg), command, { onTakeover: (m) => ctx.out.warn(m) });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

export interface BackupOptions {
  /** upload a pre-restore capture too */
  upload?: boolean;
}

export async function runBackup(ctx: JobContext, kind: SnapshotKind, opts: BackupOptions = {}): Promise<number> {
  return withBackupLock(ctx, `l2backup ${kind}`, () => backupLocked(ctx, kind, opts));
}

/** A backup run; the caller holds the backup lock (restore takes its pre-restore capture this way). */
export async function backupLocked(ctx: JobContext, kind: SnapshotKind, opts: BackupOptions = {}): Promise<number> {
  const { cfg, out } = ctx;
  const command = `l2backup ${kind}`;
  const started = Date.now();
  const records = new BackupRecords(cfg.BACKUP_ROOT, (m) => out.warn(m));
  const alerter = new Alerter(cfg, out, 'l2backup');
  {
    const removed = await cleanLeftovers([cfg.BACKUP_ROOT, join(cfg.BACKUP_ROOT, PRE_RESTORE_DIR)]);
    for (const r of removed) out.warn(`removed leftover of an interrupted run: ${r}`);

    const id = await newId(cfg.BACKUP_ROOT);
    const main = await listSnapshotDirs(cfg.BACKUP_ROOT, false);
    const base = main[main.length - 1];
    const progress = await out.progress(`${kind} ${id}: reading sources`);
    let manifest: Manifest;
    let partial: boolean;
    let dir: string;
    try {
      const res = await buildSnapshot({
        root: cfg.BACKUP_ROOT,
        id,
        kind,
        sources: cfg.BACKUP_SOURCES,
        exclude: cfg.BACKUP_EXCLUDE,
        base: base ? { id: base.id, dir: base.dir } : undefined,
        envFile: cfg.envFile.loaded ? cfg.envFile.path : undefined,
        secrets: secretValues(cfg),
        signal: ctx.signal,
        warn: (m) => out.warn(m),
        onProgress: (files, bytes) => {
          const secs = (Date.now() - started) / 1000;
          progress.update(`${kind} ${id}: ${files} files, ${formatBytes(bytes)} (${formatBytes(bytes / Math.max(secs, 0.001))}/s)`);
        },
      });
      ({ manifest, partial, dir } = res);
    } catch (err) {
      const msg = errorMessage(err);
      progress.fail(`${kind} ${id} failed: ${msg}`);
      const rec: RunRecord = { command, status: 'failed', startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(), id, kind, durationMs: Date.now() - started, error: msg };
      await records.writeRun(rec).catch((e) => out.warn(`run record not written: ${errorMessage(e)}`));
      await alerter.send({ level: 'error', title: `backup ${kind} failed`, message: `${msg}. Earlier snapshots are untouched; check 'docker compose logs cron' and 'l2backup status'.`, key: `l2backup:${kind}:failed` });
      if (err instanceof L2Error && err.exitCode !== EXIT.FAILED) throw err;
      return EXIT.FAILED;
    }
    const t = manifest.totals;
    progress.succeed(`${kind} ${id}: ${t.files} files, ${formatBytes(t.bytes)} (${formatBytes(t.newBytes)} new, ${t.linkedFiles} linked) in ${formatDuration(Date.now() - started)}`);

    // Remote copies: this snapshot joins the pending list; pending ones go up oldest first.
    let remoteState = 'off';
    let remoteError: string | undefined;
    const settings = remoteSettings(cfg);
    const wantUpload = settings && (kind !== 'emergency-pre-restore' || opts.upload);
    if (wantUpload) {
      await records.setRemote({ id, state: 'pending', attempts: 0, bucket: settings.bucket });
      const sync = await syncPending(ctx, records);
      remoteState = sync.error ? 'pending' : 'uploaded';
      remoteError = sync.error;
    } else if (settings) {
      remoteState = 'not uploaded (pre-restore capture)';
    }

    // Retention only now that a new snapshot is complete.
    await pruneLocal(ctx, records, false);

    const status: RunRecord['status'] = partial ? 'partial' : 'ok';
    const rec: RunRecord = {
      command,
      status,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date().toISOString(),
      id,
      kind,
      files: t.files,
      bytes: t.bytes,
      newBytes: t.newBytes,
      durationMs: Date.now() - started,
      remote: remoteState,
      warnings: manifest.warnings.length,
      ...(remoteError ? { error: remoteError } : {}),
    };
    await records.writeRun(rec);
    const summary = `snapshot ${id} (${kind}): ${t.files} files, ${formatBytes(t.bytes)}, ${formatBytes(t.newBytes)} new, ${formatDuration(rec.durationMs)}; remote: ${remoteState}; at ${dir}`;
    if (remoteError) {
      await alerter.send({ level: 'error', title: 'backup upload failed', message: `${remoteError}. The local snapshot ${id} stands and is marked remote pending; the next run uploads it.`, key: 'l2backup:upload-failed' });
    }
    if (partial) {
      const bad = manifest.sources.filter((s) => s.status !== 'ok').map((s) => `${s.name} (${s.error ?? s.status})`);
      await alerter.send({ level: 'warning', title: `backup ${kind} partial`, message: `${summary}. Sources not fully backed up: ${bad.join(', ')}. Verify backup source directories exist and have content.`, key: `l2backup:${kind}:partial` });
    } else if (!remoteError) {
      await alerter.send({ level: 'info', title: `backup ${kind} ok`, message: summary, key: `l2backup:${kind}:ok` });
    }
    if (remoteError) return EXIT.FAILED;
    return partial ? EXIT.PARTIAL : EXIT.OK;
  }
}

/** Uploads every pending snapshot, oldest first; stops at the first failure. Caller holds the lock. */
export async function syncPending(ctx: JobContext, records: BackupRecords): Promise<{ uploaded: string[]; error?: string }> {
  const { cfg, out } = ctx;
  const settings = remoteSettings(cfg);
  if (!settings) return { uploaded: [] };
  const pending = (await records.allRemote()).filter((r) => r.state === 'pending');
  if (pending.length === 0) return { uploaded: [] };
  const remote = await Remote.open(settings);
  const uploaded: string[] = [];
  try {
    const local = new Map((await listLocal(cfg.BACKUP_ROOT, true)).map((r) => [r.id, r]));
    for (const rec of pending) {
      const ref = local.get(rec.id);
      if (!ref) {
        out.warn(`snapshot ${rec.id} is pending upload but its local copy is gone; it cannot be uploaded`);
        await records.setRemote({ ...rec, state: 'skipped', lastError: 'local copy gone before upload' });
        continue;
      }
      const attemptAt = new Date().toISOString();
      try {
        const manifest = await readManifest(ref.dir);
        const entries = await readAllEntries(ref.dir);
        const base = await remoteBase(remote, records, rec.id, local);
        const progress = await out.progress(`uploading ${rec.id} to ${remote.url}`);
        const started = Date.now();
        let res;
        try {
          res = await remote.uploadSnapshot({
            id: rec.id,
            dir: ref.dir,
            manifest,
            entries,
            base,
            signal: ctx.signal,
            onProgress: (done, total, sent) => progress.update(`uploading ${rec.id}: ${done}/${total} objects, ${formatBytes(sent)} sent`),
          });
        } catch (err) {
          progress.fail(`upload of ${rec.id} failed: ${err instanceof L2Error ? err.message : remote.describe(err)}`);
          throw Object.assign(err as object, { reported: true });
        }
        progress.succeed(`uploaded ${rec.id}: ${res.uploaded} objects (${formatBytes(res.bytesSent)}), ${res.copied} copied server-side, in ${formatDuration(Date.now() - started)}`);
        await records.setRemote({ ...rec, state: 'uploaded', attempts: rec.attempts + 1, lastAttemptAt: attemptAt, uploadedAt: new Date().toISOString(), bytesSent: res.bytesSent, objectsCopied: res.copied, objectsUploaded: res.uploaded, lastError: undefined });
        uploaded.push(rec.id);
      } catch (err) {
        const msg = err instanceof L2Error ? err.message : remote.describe(err);
        await records.setRemote({ ...rec, attempts: rec.attempts + 1, lastAttemptAt: attemptAt, lastError: msg });
        if (!(err as { reported?: boolean }).reported) out.error(`upload of ${rec.id} failed: ${msg}`);
        if (ctx.signal.aborted) throw err;
        return { uploaded, error: `upload of ${rec.id} to ${remote.url} failed: ${msg}` };
      }
    }
    try {
      await pruneRemote(ctx, remote, records);
    } catch (err) {
      out.warn(`remote retention skipped: ${remote.describe(err)}`);
    }
    return { uploaded };
  } finally {
    remote.destroy();
  }
}

/** The newest uploaded snapshot before `id`, with its file list, for server-side copies. */
async function remoteBase(remote: Remote, records: BackupRecords, id: string, local: Map<string, { dir: string }>) {
  const done = (await records.allRemote()).filter((r) => r.state === 'uploaded' && r.id < id).map((r) => r.id);
  for (const baseId of done.reverse()) {
    try {
      const ref = local.get(baseId);
      if (ref) return { id: baseId, entries: await readAllEntries(ref.dir) };
      if (!(await remote.isComplete(baseId))) continue;
      return { id: baseId, entries: await remote.readEntries(baseId, await remote.readManifest(baseId)) };
    } catch {
      continue;
    }
  }
  return undefined;
}

export async function pruneLocal(ctx: JobContext, records: BackupRecords, dryRun: boolean): Promise<{ deleted: string[]; kept: { id: string; why: string }[] }> {
  const { cfg, out } = ctx;
  const pending = new Set((await records.allRemote()).filter((r) => r.state === 'pending').map((r) => r.id));
  const now = Date.now();
  const main = planLocalPrune(await listSnapshotDirs(cfg.BACKUP_ROOT, false), cfg.BACKUP_LOCAL_RETENTION_DAYS, now, pending);
  const pre = planLocalPrune(await listSnapshotDirs(join(cfg.BACKUP_ROOT, PRE_RESTORE_DIR), true), cfg.BACKUP_PRE_RESTORE_RETENTION_DAYS, now, pending, false);
  const deleted: string[] = [];
  for (const ref of [...main.delete, ...pre.delete]) {
    if (dryRun) {
      deleted.push(ref.id);
      continue;
    }
    try {
      await removeSnapshotDir(ref.dir);
      await records.removeRemote(ref.id).catch(() => {});
      deleted.push(ref.id);
      out.info(`retention: deleted ${ref.preRestore ? 'pre-restore capture' : 'snapshot'} ${ref.id}`);
    } catch (err) {
      out.warn(`retention: could not delete ${ref.dir}: ${errorMessage(err)}`);
    }
  }
  for (const k of main.keep) if (k.why === 'remote upload still pending' && !dryRun) out.warn(`retention: kept ${k.ref.id} past its age: its remote upload is still pending`);
  return { deleted, kept: main.keep.map((k) => ({ id: k.ref.id, why: k.why })) };
}
