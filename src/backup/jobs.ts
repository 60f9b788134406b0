/**
 * The backup jobs, as named steps. Every step expects the caller to hold the backup lock.
 *   nightly / snapshot:     removeLeftovers -> capture -> uploadPending -> applyRemoteRetention
 *                           -> applyRetention -> finishRun
 *   emergency-pre-restore:  removeLeftovers -> capture -> (uploadPending with --upload) -> finishRun
 * A capture never applies retention: restore takes one right before it reads the snapshot it
 * restores, and retention must never delete that snapshot from under it.
 */
import type { Config } from '../config/index.js';
import { secretValues } from '../config/index.js';
import type { Output } from '../output/index.js';
import { formatBytes, formatDuration } from '../output/index.js';
import { Alerter } from '../alert/index.js';
import { acquireLock } from '../state/lock.js';
import { statePaths } from '../state/paths.js';
import { EXIT, L2Error, errorMessage } from '../errors.js';
import { join } from 'node:path';
import { buildSnapshot } from './snapshot.js';
import { PRE_RESTORE_DIR, newId, type SnapshotKind } from './layout.js';
import { readManifest, type Manifest } from './manifest.js';
import { BackupRecords, type RunRecord } from './records.js';
import { Remote, UnuploadableError, remoteSettings } from './remote.js';
import { baseOf, localCatalog, readLocalEntries } from './catalog.js';
import { recordUsage, snapshotObjectBytes } from './usage.js';
import { PENDING, cleanLeftovers, planRetention, removeSnapshotDir, type RetentionPlan, type RetentionPolicy } from './retention.js';
import { pruneRemote } from './remote-retention.js';
import { removeDrillLeftovers } from './drill-dir.js';

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

/** A backup run of any kind; the caller holds the backup lock. A capture goes to capturePreRestore. */
export async function backupLocked(ctx: JobContext, kind: SnapshotKind, opts: BackupOptions = {}): Promise<number> {
  return kind === 'emergency-pre-restore' ? capturePreRestore(ctx, opts) : backupJob(ctx, kind);
}

/** nightly / snapshot: the whole job. */
export async function backupJob(ctx: JobContext, kind: 'nightly' | 'snapshot'): Promise<number> {
  const run = startRun(ctx, kind);
  await removeLeftovers(ctx);
  const snap = await capture(ctx, run);
  if (typeof snap === 'number') return snap;
  const upload = await queueAndUpload(ctx, run, snap);
  // Retention only now that a new snapshot is complete, and only after a backup (never a capture).
  if (upload.state === 'uploaded') await applyRemoteRetention(ctx, run.records, run.notes);
  await applyRetention(ctx, run.records, false);
  await sampleUsage(ctx, run);
  return finishRun(ctx, run, snap, upload);
}

/**
 * An emergency-pre-restore capture into .pre-restore/ (what restore takes before it writes into
 * the live sources). No retention; never counts as the last successful backup; uploaded only
 * with `upload`. The caller holds the backup lock.
 */
export async function capturePreRestore(ctx: JobContext, opts: BackupOptions = {}): Promise<number> {
  const run = startRun(ctx, 'emergency-pre-restore');
  await removeLeftovers(ctx);
  const snap = await capture(ctx, run);
  if (typeof snap === 'number') return snap;
  const upload = await queueAndUpload(ctx, run, snap, Boolean(opts.upload));
  return finishRun(ctx, run, snap, upload);
}

interface Run {
  kind: SnapshotKind;
  command: string;
  started: number;
  records: BackupRecords;
  alerter: Alerter;
  /** notes said once this run (see noteOnce), kept in the run record */
  notes: string[];
}

interface Captured {
  id: string;
  manifest: Manifest;
  partial: boolean;
  dir: string;
}

interface UploadOutcome {
  /** what the run record says about the remote */
  state: string;
  error?: string;
  skipped: number;
}

/**
 * Issue 12: a run's notes for the operator that are not failures (copies that fell back to an
 * upload, remote prune left to the prune job). Each is said once, as a warning line, and kept in
 * the run record, so that it is seen and not repeated silently every night.
 */
function noteOnce(ctx: JobContext, notes: string[], note: string, warn = true): void {
  if (notes.includes(note)) return;
  notes.push(note);
  if (warn) ctx.out.warn(note);
  else ctx.out.info(note);
}

function startRun(ctx: JobContext, kind: SnapshotKind): Run {
  return { kind, command: `l2backup ${kind}`, started: Date.now(), records: new BackupRecords(ctx.cfg.BACKUP_ROOT, (m) => ctx.out.warn(m)), alerter: new Alerter(ctx.cfg, ctx.out, 'l2backup'), notes: [] };
}

export async function removeLeftovers(ctx: JobContext): Promise<void> {
  const removed = await cleanLeftovers([ctx.cfg.BACKUP_ROOT, join(ctx.cfg.BACKUP_ROOT, PRE_RESTORE_DIR)]);
  for (const r of removed) ctx.out.warn(`removed leftover of an interrupted run: ${r}`);
  for (const r of await removeDrillLeftovers(ctx.cfg)) ctx.out.warn(`removed the folder of a drill that did not finish: ${r}`);
}

/**
 * The id a run gets. A nightly names its scheduled minute (02:00:03 -> ...-020000), so the
 * runbook's `--include "202510*-020000*"` finds it; any run takes the next free second if taken.
 */
export function idTimeFor(kind: SnapshotKind, started: number): number {
  return kind === 'nightly' ? started - (started % 60_000) : started;
}

/** Builds the snapshot; on failure records the run, alerts, and returns the exit code. */
async function capture(ctx: JobContext, run: Run): Promise<Captured | number> {
  const { cfg, out } = ctx;
  const { kind, started } = run;
  const remoteRecords = await run.records.allRemote();
  const id = await newId(cfg.BACKUP_ROOT, idTimeFor(kind, started), new Set(remoteRecords.map((r) => r.id)));
  const base = baseOf(await localCatalog(cfg.BACKUP_ROOT, remoteRecords), Date.now());
  const progress = await out.progress(`${kind} ${id}: reading sources`);
  try {
    const res = await buildSnapshot({
      root: cfg.BACKUP_ROOT,
      id,
      kind,
      sources: cfg.BACKUP_SOURCES,
      exclude: cfg.BACKUP_EXCLUDE,
      base: base ? { id: base.id, dir: base.dir! } : undefined,
      envFile: cfg.envFile.loaded ? cfg.envFile.path : undefined,
      secrets: secretValues(cfg),
      signal: ctx.signal,
      warn: (m) => out.warn(m),
      onProgress: (files, bytes) => {
        const secs = (Date.now() - started) / 1000;
        progress.update(`${kind} ${id}: ${files} files, ${formatBytes(bytes)} (${formatBytes(bytes / Math.max(secs, 0.001))}/s)`);
        out.status({ phase: 'snapshot', snapshot_id: id, files_done: files, bytes_done: bytes });
      },
    });
    const t = res.manifest.totals;
    progress.succeed(`${kind} ${id}: ${t.files} files, ${formatBytes(t.bytes)} (${formatBytes(t.newBytes)} new, ${t.linkedFiles} linked) in ${formatDuration(Date.now() - started)}`);
    return { id, manifest: res.manifest, partial: res.partial, dir: res.dir };
  } catch (err) {
    const msg = errorMessage(err);
    progress.fail(`${kind} ${id} failed: ${msg}`);
    const rec: RunRecord = { command: run.command, status: 'failed', startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(), id, kind, durationMs: Date.now() - started, error: msg };
    await run.records.writeRun(rec).catch((e) => out.warn(`run record not written: ${errorMessage(e)}`));
    if (kind !== 'emergency-pre-restore') out.addSummary({ snapshot_id: id, run_status: 'failed', error: msg });
    await run.alerter.send({ level: 'error', title: `backup ${kind} failed`, message: `${msg}. Earlier snapshots are untouched; check 'docker compose logs cron' and 'l2backup status'.`, key: `l2backup:${kind}:failed` });
    if (err instanceof L2Error && err.exitCode !== EXIT.FAILED) throw err;
    return EXIT.FAILED;
  }
}

/** The new snapshot joins the pending list (when it goes up at all); pending ones go up oldest first. */
async function queueAndUpload(ctx: JobContext, run: Run, snap: Captured, uploadCapture = false): Promise<UploadOutcome> {
  const settings = remoteSettings(ctx.cfg);
  if (!settings) return { state: 'off', skipped: 0 };
  if (run.kind === 'emergency-pre-restore' && !uploadCapture) return { state: 'not uploaded (pre-restore capture)', skipped: 0 };
  await run.records.setRemote({ id: snap.id, state: 'pending', kind: run.kind, pendingSince: snap.manifest.finishedAt, attempts: 0, bucket: settings.bucket });
  const sync = await uploadPending(ctx, run.records);
  run.notes.push(...sync.notes.filter((n) => !run.notes.includes(n)));
  const mine = await run.records.remote(snap.id);
  const state = mine?.state === 'uploaded' ? 'uploaded' : mine?.state === 'skipped' ? 'skipped (cannot be uploaded)' : 'pending';
  return { state, error: sync.error, skipped: sync.skipped.length };
}

/** Writes the run record and sends the run's alert; returns the exit code. */
async function finishRun(ctx: JobContext, run: Run, snap: Captured, upload: UploadOutcome): Promise<number> {
  const { kind, records, alerter } = run;
  const { id, manifest, partial, dir } = snap;
  const t = manifest.totals;
  const pendingSince = kind === 'emergency-pre-restore' || !remoteSettings(ctx.cfg) ? undefined : await records.remotePendingSince();
  // A run whose own snapshot was skipped (cannot be uploaded) left the remote as stale as a
  // failed upload: not "ok", and remotePendingSince says since when (the health check reads it).
  const remotePending = upload.state === 'pending' || upload.state.startsWith('skipped');
  const status: RunRecord['status'] = partial ? 'partial' : remotePending ? 'pending' : 'ok';
  const rec: RunRecord = {
    command: run.command,
    status,
    startedAt: new Date(run.started).toISOString(),
    finishedAt: new Date().toISOString(),
    id,
    kind,
    files: t.files,
    bytes: t.bytes,
    newBytes: t.newBytes,
    durationMs: Date.now() - run.started,
    remote: upload.state,
    ...(pendingSince ? { remotePendingSince: pendingSince } : {}),
    warnings: manifest.warnings.length,
    ...(run.notes.length ? { notes: run.notes } : {}),
    ...(upload.error ? { error: upload.error } : {}),
  };
  await records.writeRun(rec);
  if (kind !== 'emergency-pre-restore') {
    ctx.out.addSummary({ snapshot_id: id, run_status: status, files: t.files, bytes: t.bytes, new_bytes: t.newBytes, linked_files: t.linkedFiles, remote: upload.state, ...(upload.error ? { error: upload.error } : {}), warnings: manifest.warnings.length });
  }
  const remoteWords = upload.state === 'pending' ? `local ok, remote pending since ${pendingSince ?? manifest.finishedAt}` : remotePending ? `local ok, ${upload.state}; remote behind since ${pendingSince ?? manifest.finishedAt}` : upload.state;
  const summary = `snapshot ${id} (${kind}): ${t.files} files, ${formatBytes(t.bytes)}, ${formatBytes(t.newBytes)} new, ${formatDuration(rec.durationMs)}; remote: ${remoteWords}; at ${dir}`;
  if (upload.error) {
    await alerter.send({ level: 'error', title: 'backup upload failed', message: `${upload.error}. The local snapshot ${id} stands; ${remoteWords}; the next run uploads it.`, key: 'l2backup:upload-failed' });
  }
  if (partial) {
    const bad = manifest.sources.filter((s) => s.status !== 'ok').map((s) => `${s.name} (${s.error ?? s.status})`);
    await alerter.send({ level: 'warning', title: `backup ${kind} partial`, message: `${summary}. Sources not fully backed up: ${bad.join(', ')}. Verify backup source directories exist and have content.`, key: `l2backup:${kind}:partial` });
  } else if (!upload.error && !upload.skipped) {
    await alerter.send({ level: 'info', title: `backup ${kind} ok`, message: summary, key: `l2backup:${kind}:ok` });
  }
  if (upload.error || upload.skipped) return EXIT.FAILED;
  return partial ? EXIT.PARTIAL : EXIT.OK;
}

export interface SyncResult {
  uploaded: string[];
  /** pending snapshots that can never be uploaded (damaged local copy, key rejected for good) */
  skipped: { id: string; reason: string }[];
  /** the upload that failed for a reason that may pass (network, server, credentials): the rest waits */
  error?: string;
  /** notes said once (see noteOnce) */
  notes: string[];
}

/**
 * Uploads every pending snapshot, oldest first. One that cannot be uploaded for good is alerted
 * and skipped (it then ages out like any other); a failure that may pass stops the round and
 * leaves the rest pending. No retention here (see applyRemoteRetention). Caller holds the lock.
 */
export async function uploadPending(ctx: JobContext, records: BackupRecords): Promise<SyncResult> {
  const { cfg, out } = ctx;
  const result: SyncResult = { uploaded: [], skipped: [], notes: [] };
  const settings = remoteSettings(cfg);
  if (!settings) return result;
  const pending = (await records.allRemote()).filter((r) => r.state === 'pending');
  if (pending.length === 0) return result;
  const remote = await Remote.open(settings);
  const alerter = new Alerter(cfg, out, 'l2backup');
  try {
    const local = new Map((await localCatalog(cfg.BACKUP_ROOT, [])).map((e) => [e.id, { dir: e.dir! }]));
    for (const rec of pending) {
      const ref = local.get(rec.id);
      const attemptAt = new Date().toISOString();
      let reason: string | undefined;
      // Never write into a remote id that holds a complete, different snapshot; and one that is
      // already there whole (its record was lost) needs nothing sent.
      const localManifest = ref ? await readManifest(ref.dir).catch(() => null) : undefined;
      const there =
        localManifest === null
          ? undefined
          : await remote.holds(rec.id, localManifest).catch((err) => {
              if (ctx.signal.aborted) throw err;
              return undefined; // unknown: the upload below meets the same server and reports it
            });
      if (there === 'same') {
        // Already complete on the remote (an earlier round whose record was lost): nothing to send.
        await records.setRemote({ ...rec, state: 'uploaded', attempts: rec.attempts + 1, lastAttemptAt: attemptAt, uploadedAt: attemptAt, lastError: undefined });
        out.info(`${rec.id} is already complete on ${remote.url}`);
        result.uploaded.push(rec.id);
        continue;
      }
      if (there === 'other') reason = `${remote.url}${rec.id}/ already holds a complete, different snapshot with this id (the clock moved back?); not overwriting it`;
      else if (!ref) reason = 'its local copy is gone';
      else {
        const progress = await out.progress(`uploading ${rec.id} to ${remote.url}`);
        const started = Date.now();
        try {
          let manifest: Manifest;
          let entries;
          try {
            manifest = await readManifest(ref.dir);
            entries = await readLocalEntries(ref.dir, manifest);
          } catch (err) {
            throw new UnuploadableError(`its local copy is damaged: ${errorMessage(err)}`);
          }
          const base = await remoteBase(remote, records, rec.id, local);
          const res = await remote.uploadSnapshot({
            id: rec.id,
            dir: ref.dir,
            manifest,
            entries,
            base,
            signal: ctx.signal,
            onProgress: (done, total, sent) => {
              progress.update(`uploading ${rec.id}: ${done}/${total} objects, ${formatBytes(sent)} sent`);
              out.status({ phase: 'upload', snapshot_id: rec.id, files_done: done, total_files: total, bytes_done: sent });
            },
          });
          progress.succeed(`uploaded ${rec.id}: ${res.uploaded} objects (${formatBytes(res.bytesSent)}), ${res.copied} copied server-side, in ${formatDuration(Date.now() - started)}`);
          if (res.copyFallback && !result.notes.some((n) => n.startsWith('server-side copy failed'))) {
            noteOnce(ctx, result.notes, `server-side copy failed for ${res.copyFallback.count} unchanged object(s) of ${rec.id}, uploaded again instead (first: ${res.copyFallback.first}); check that the server and key allow CopyObject and UploadPartCopy`);
          }
          const storedBytes = await snapshotObjectBytes(ref.dir).catch(() => undefined);
          await records.setRemote({ ...rec, state: 'uploaded', attempts: rec.attempts + 1, lastAttemptAt: attemptAt, uploadedAt: new Date().toISOString(), bytesSent: res.bytesSent, objectsCopied: res.copied, objectsUploaded: res.uploaded, lastError: undefined, ...(storedBytes === undefined ? {} : { storedBytes }) });
          result.uploaded.push(rec.id);
          continue;
        } catch (err) {
          const msg = err instanceof L2Error ? err.message : remote.describe(err);
          if (err instanceof UnuploadableError && !ctx.signal.aborted) {
            progress.fail(`${rec.id} cannot be uploaded: ${msg}`);
            reason = msg;
          } else {
            progress.fail(`upload of ${rec.id} failed: ${msg}`);
            await records.setRemote({ ...rec, attempts: rec.attempts + 1, lastAttemptAt: attemptAt, lastError: msg });
            if (ctx.signal.aborted) throw err;
            result.error = `upload of ${rec.id} to ${remote.url} failed: ${msg}`;
            break;
          }
        }
      }
      await records.setRemote({ ...rec, state: 'skipped', attempts: rec.attempts + 1, lastAttemptAt: attemptAt, lastError: reason });
      result.skipped.push({ id: rec.id, reason });
      await alerter.send({
        level: 'error',
        title: 'backup upload skipped',
        message: `snapshot ${rec.id} cannot be uploaded to ${remote.url}: ${reason}. It stays local only (and ages out like any other); newer snapshots still upload. Check it with 'l2backup verify ${rec.id}'.`,
        key: `l2backup:upload-skipped:${rec.id}`,
      });
    }
    return result;
  } finally {
    remote.destroy();
    await records.refreshRemotePending().catch((e) => out.warn(`last-success record not refreshed: ${errorMessage(e)}`));
  }
}

/** The newest uploaded snapshot before `id`, with its file list, for server-side copies. */
async function remoteBase(remote: Remote, records: BackupRecords, id: string, local: Map<string, { dir: string }>) {
  const done = (await records.allRemote()).filter((r) => r.state === 'uploaded' && r.id < id).map((r) => r.id);
  for (const baseId of done.reverse()) {
    try {
      const ref = local.get(baseId);
      if (ref) return { id: baseId, entries: await readLocalEntries(ref.dir, await readManifest(ref.dir)) };
      if (!(await remote.isComplete(baseId))) continue;
      return { id: baseId, entries: await remote.readEntries(baseId, await remote.readManifest(baseId)) };
    } catch {
      continue;
    }
  }
  return undefined;
}

/** Remote retention after a backup's successful upload round; a failure is a warning. Caller holds the lock. */
export async function applyRemoteRetention(ctx: JobContext, records: BackupRecords, notes: string[] = []): Promise<void> {
  const settings = remoteSettings(ctx.cfg);
  if (!settings) return;
  const remote = await Remote.open(settings);
  try {
    const plan = await pruneRemote(ctx, remote, records);
    // A least-privilege nightly key may not delete: not a failure, the prune job does it.
    if (plan.denied) noteOnce(ctx, notes, `remote prune is left to the prune job ('l2backup prune --remote' with S3_PRUNE_ACCESS_KEY_ID): ${plan.denied}`, false);
  } catch (err) {
    ctx.out.warn(`remote retention skipped: ${err instanceof L2Error ? err.message : remote.describe(err)}`);
  } finally {
    remote.destroy();
  }
}

/** Appends tonight's storage sample (usage.ts) and alerts when a forecast passes its budget; a failure is a warning. */
async function sampleUsage(ctx: JobContext, run: Run): Promise<void> {
  try {
    const usage = await recordUsage(ctx.cfg, (m) => ctx.out.warn(m));
    for (const [where, t] of [['local', usage.local], ['remote', usage.remote]] as const) {
      if (t?.overBudget) await run.alerter.send({ level: 'warning', title: `backup storage over budget (${where})`, message: `${where} backups: ${t.overBudget}. Tighten BACKUP_${where.toUpperCase()}_KEEP or raise the budget; see 'l2backup status'.`, key: `l2backup:budget:${where}` });
    }
  } catch (err) {
    ctx.out.warn(`storage usage not recorded: ${errorMessage(err)}`);
  }
}

/** The local policy from the settings: BACKUP_LOCAL_KEEP wins over BACKUP_LOCAL_RETENTION_DAYS. */
export const localPolicy = (cfg: Config): RetentionPolicy => ({ days: cfg.BACKUP_LOCAL_RETENTION_DAYS, preRestoreDays: cfg.BACKUP_PRE_RESTORE_RETENTION_DAYS, ...(cfg.BACKUP_LOCAL_KEEP ? { keep: cfg.BACKUP_LOCAL_KEEP } : {}) });

/** Applies local retention (the planner's plan); `dryRun` only plans. Caller holds the lock. */
export async function applyRetention(ctx: JobContext, records: BackupRecords, dryRun: boolean): Promise<RetentionPlan> {
  const { cfg, out } = ctx;
  // With no remote configured nothing is waiting to go up: "pending" protects nothing then.
  const catalog = await localCatalog(cfg.BACKUP_ROOT, remoteSettings(cfg) ? await records.allRemote() : []);
  const plan = planRetention(catalog, localPolicy(cfg), Date.now());
  if (plan.refused) out.warn(`retention: ${plan.refused}`);
  if (dryRun) return plan;
  const dirs = new Map(catalog.map((e) => [e.id, e]));
  const deleted: RetentionPlan['delete'] = [];
  for (const d of plan.delete) {
    const e = dirs.get(d.id)!;
    try {
      await removeSnapshotDir(e.dir!);
      // An uploaded snapshot's record stays: its id lives on on the remote, and no new snapshot
      // may take it (newId). Remote retention forgets it when it deletes the remote copy.
      if (e.remote !== 'uploaded') await records.removeRemote(d.id).catch(() => {});
      deleted.push(d);
      out.info(`retention: deleted ${e.kind === 'emergency-pre-restore' ? 'pre-restore capture' : 'snapshot'} ${d.id} (${d.why})`);
    } catch (err) {
      out.warn(`retention: could not delete ${e.dir}: ${errorMessage(err)}`);
    }
  }
  for (const k of plan.keep) if (k.why === PENDING) out.warn(`retention: kept ${k.id} past its age: its remote upload is still pending`);
  return { ...plan, delete: deleted };
}
