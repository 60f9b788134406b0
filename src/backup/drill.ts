/**
 * `l2backup drill`: the runbook's "Monthly Validation: test full restore procedure", as a job.
 * Restores the latest complete snapshot (restore's own code: writeAll, local copy or remote
 * download) into a scratch folder under BACKUP_DRILL_DIR, reads every restored file back and
 * checks its hash against the manifest, records how long the restore took (the recovery time
 * an operator can expect), bytes and files, alerts on any mismatch, missing object or failure,
 * and removes what it restored, also when interrupted.
 *
 * It holds the backup lock (exclusive, the one lock rule): retention runs only under that lock,
 * so the snapshot being restored cannot be pruned from under the drill. There is no shared mode
 * to give instead, and a drill that ran beside a nightly would compete with it for the disk
 * and the network anyway, which would make the figures it records worthless.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { formatBytes } from '../output/index.js';
import { Alerter } from '../alert/index.js';
import { EXIT, L2Error, UsageError, errnoCode, errorMessage } from '../errors.js';
import { ensureDir } from '../state/files.js';
import { statePaths } from '../state/paths.js';
import { withBackupLock, type JobContext } from './jobs.js';
import { isBackup, localCatalog, remoteCatalog, resolveSnapshot, type Origin, type ResolvedSnapshot } from './catalog.js';
import { checkEntries, preflight, writeAll, type Plan, type WriteReport } from './restore.js';
import { entryPath, entryTarget, type Entry } from './manifest.js';
import { hashFile } from './hash.js';
import { overlap, within } from './realpath.js';
import { DRILL_PREFIX, removeDrillLeftovers, removeTree } from './drill-dir.js';
import { describeDrill, writeDrillRecord, type DrillRecord } from './drill-record.js';

export { readLastDrill, drillRecordPath, describeDrill, type DrillRecord } from './drill-record.js';
// In its own module: l2backup reads `--sample` without loading the drill (start-up, issue 14).
export { parseSample } from './drill-sample.js';

const PROBLEMS_KEPT = 20;

export interface DrillOptions {
  from: Origin;
  sample: number;
}

/** The files a drill restores: all, or a random `sample` of them (at least one); folders and symlinks always. */
export function pickEntries(entries: Entry[], sample: number): Entry[] {
  if (sample >= 1) return entries;
  const files = entries.filter((e) => e.t === 'f');
  const want = Math.min(files.length, Math.max(1, Math.round(files.length * sample)));
  for (let i = 0; i < want; i++) {
    const j = i + randomInt(files.length - i);
    [files[i], files[j]] = [files[j]!, files[i]!];
  }
  const chosen = new Set(files.slice(0, want));
  return entries.filter((e) => e.t !== 'f' || chosen.has(e));
}

/** BACKUP_DRILL_DIR must keep away from the live sources, and from the snapshots (outside BACKUP_ROOT, or in its .l2). */
async function checkDrillDir(cfg: Config): Promise<void> {
  const dir = cfg.BACKUP_DRILL_DIR;
  for (const s of cfg.BACKUP_SOURCES) {
    if (await overlap(s.path, dir)) throw new UsageError(`BACKUP_DRILL_DIR=${dir} overlaps source ${s.name}=${s.path}; a drill never writes near the live tree: point BACKUP_DRILL_DIR elsewhere`);
  }
  const inRoot = await overlap(cfg.BACKUP_ROOT, dir);
  if (inRoot === 'contains' || (inRoot === 'inside' && !within(statePaths(cfg.BACKUP_ROOT).dir, dir))) {
    throw new UsageError(`BACKUP_DRILL_DIR=${dir} lies among the snapshots in BACKUP_ROOT=${cfg.BACKUP_ROOT}; use ${statePaths(cfg.BACKUP_ROOT).dir}/drill (the default) or a folder outside it`);
  }
}

/** Makes BACKUP_DRILL_DIR (private) and a fresh scratch folder in it; a symlink or file there is refused. */
async function makeScratch(cfg: Config, id: string): Promise<string> {
  const dir = cfg.BACKUP_DRILL_DIR;
  await ensureDir(dir).catch((err: unknown) => {
    throw new L2Error(`BACKUP_DRILL_DIR=${dir} cannot be made (${errnoCode(err) ?? errorMessage(err)}); point it at a folder the job user can write`);
  });
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) throw new UsageError(`BACKUP_DRILL_DIR=${dir} is not a folder (a symlink or file); point it at a real folder`);
  const scratch = join(dir, `${DRILL_PREFIX}${id}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(scratch, { mode: 0o700 });
  return scratch;
}

/** Room for what is about to be restored, checked up front: a drill must not fill the volume the next nightly needs. */
async function checkSpace(dir: string, bytes: number): Promise<void> {
  const s = await fs.statfs(dir).catch(() => undefined);
  if (!s) return;
  const free = s.bavail * s.bsize;
  // Each file also takes a block or so beyond its bytes; keep 5% of the need spare.
  const need = Math.ceil(bytes * 1.05);
  if (free < need) throw new L2Error(`not enough space for the drill in ${dir}: ${formatBytes(free)} free, the restore needs about ${formatBytes(need)}; free space, point BACKUP_DRILL_DIR at a bigger volume, or use --sample`);
}

const rawPath = (base: string, e: Entry) => Buffer.concat([Buffer.from(`${join(base, e.s)}/`), entryPath(e)]);
const show = (e: Entry) => JSON.stringify(`${e.s}/${e.p}`).slice(1, -1);

/** Reads every restored file back (the one hasher) and checks it, and every symlink, against the manifest. */
async function checkRestored(scratch: string, entries: Entry[], skip: Set<string>, signal: AbortSignal): Promise<{ mismatches: string[]; missing: string[] }> {
  const mismatches: string[] = [];
  const missing: string[] = [];
  for (const e of entries) {
    if (e.t === 'd' || skip.has(show(e))) continue;
    signal.throwIfAborted();
    const path = rawPath(scratch, e);
    try {
      if (e.t === 'l') {
        if (!(await fs.readlink(path, { encoding: 'buffer' })).equals(Buffer.from(entryTarget(e)))) mismatches.push(show(e));
        continue;
      }
      const d = await hashFile(path);
      if (d.sha256 !== e.sha256 || (e.size !== undefined && d.size !== e.size)) mismatches.push(show(e));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') missing.push(show(e));
      else mismatches.push(show(e));
    }
  }
  return { mismatches, missing };
}

/**
 * Backups newer than the one "latest" chose whose manifest cannot be read: restore latest passes
 * over them without a word, so the drill names them and fails (the newest copy is damaged).
 */
async function damagedNewer(cfg: Config, snap: ResolvedSnapshot): Promise<string[]> {
  const catalog = snap.remote ? (await remoteCatalog(snap.remote)).catalog : await localCatalog(cfg.BACKUP_ROOT, []);
  return catalog.filter((e) => e.damaged && isBackup(e) && e.id > snap.id).map((e) => e.id);
}

/** The whole drill; the exit code (0 ok, 1 mismatch/missing/failure/interrupted). */
export async function drill(ctx: JobContext, opts: DrillOptions): Promise<number> {
  const { cfg } = ctx;
  await checkDrillDir(cfg);
  await preflight(ctx, 'latest', opts.from);
  const label = `drill --from ${opts.from}${opts.sample < 1 ? ` --sample ${opts.sample}` : ''}`;
  return withBackupLock(ctx, `l2backup ${label}`, () => drillLocked(ctx, opts));
}

async function drillLocked(ctx: JobContext, opts: DrillOptions): Promise<number> {
  const { cfg, out } = ctx;
  for (const r of await removeDrillLeftovers(cfg)) out.warn(`removed the folder of an earlier drill that did not finish: ${r}`);
  // Durations on the monotonic clock: a wall clock stepped (NTP) mid-drill would record a negative or a day-long restore.
  const since = (t0: number) => Math.round(performance.now() - t0);
  const started = performance.now();
  const rec: DrillRecord = { status: 'failed', from: opts.from, startedAt: new Date().toISOString(), finishedAt: '', sample: opts.sample, restoreMs: 0, checkMs: 0, files: 0, bytes: 0, mismatches: 0, missing: 0 };
  let snap: ResolvedSnapshot | undefined;
  let scratch: string | undefined;
  let thrown: unknown;
  try {
    snap = await resolveSnapshot(cfg, 'latest', opts.from);
    rec.id = snap.id;
    const passedOver = await damagedNewer(cfg, snap);
    checkEntries(snap.entries, snap.id);
    const entries = pickEntries(snap.entries, opts.sample);
    const files = entries.filter((e) => e.t === 'f');
    const plan: Plan = { roots: new Map(), entries, files: files.length, bytes: files.reduce((n, e) => n + (e.size ?? 0), 0) };
    if (opts.sample < 1) {
      const all = snap.entries.filter((e) => e.t === 'f');
      Object.assign(rec, { totalFiles: all.length, totalBytes: all.reduce((n, e) => n + (e.size ?? 0), 0) });
    }
    scratch = await makeScratch(cfg, snap.id);
    await checkSpace(scratch, plan.bytes);
    for (const s of new Set(entries.map((e) => e.s))) plan.roots.set(s, join(scratch, s));
    out.info(`drill: restoring snapshot ${snap.id} (${opts.from}${opts.sample < 1 ? `, a sample of ${plan.files} files` : ''}: ${plan.files} files, ${formatBytes(plan.bytes)}) into ${scratch}`);
    const report: WriteReport = { files: 0, bytes: 0, mismatches: [], missing: [] };
    try {
      await writeAll(ctx, snap, plan, report);
    } finally {
      Object.assign(rec, { restoreMs: since(started), files: report.files, bytes: report.bytes });
    }
    const checkStarted = performance.now();
    const skip = new Set([...report.mismatches, ...report.missing]);
    const readBack = await checkRestored(scratch, entries, skip, ctx.signal);
    rec.checkMs = since(checkStarted);
    const problems = [...passedOver.map((id) => `damaged: snapshot ${id} is newer, but its manifest cannot be read (restore latest passes over it)`), ...report.mismatches.map((p) => `changed: ${p}`), ...report.missing.map((p) => `missing: ${p}`), ...readBack.mismatches.map((p) => `changed on disk after restore: ${p}`), ...readBack.missing.map((p) => `gone after restore: ${p}`)];
    rec.mismatches = report.mismatches.length + readBack.mismatches.length;
    rec.missing = report.missing.length + readBack.missing.length;
    if (problems.length) rec.problems = problems.slice(0, PROBLEMS_KEPT);
    if (passedOver.length) rec.error = `the newest snapshot${passedOver.length > 1 ? 's' : ''} ${passedOver.join(', ')} cannot be read (manifest damaged): run 'l2backup verify ${passedOver.at(-1)}${opts.from === 'remote' ? ' --remote' : ''}'`;
    if (rec.totalBytes !== undefined && rec.bytes > 0) rec.estimatedFullRestoreMs = Math.round((rec.restoreMs * rec.totalBytes) / rec.bytes);
    rec.status = problems.length ? 'failed' : 'ok';
  } catch (err) {
    thrown = err;
    rec.status = ctx.signal.aborted ? 'interrupted' : 'failed';
    // Interrupted: say so, not what the aborted request or copy reported on its way out.
    const cause = ctx.signal.aborted ? ctx.signal.reason : err;
    rec.error = cause instanceof L2Error ? cause.message : snap?.remote ? snap.remote.describe(cause) : errorMessage(cause);
    if (!rec.restoreMs) rec.restoreMs = since(started);
  } finally {
    snap?.remote?.destroy();
    if (scratch) {
      await removeTree(scratch).catch((err: unknown) => {
        out.error(`the drill folder ${scratch} could not be removed (${errnoCode(err) ?? errorMessage(err)}); the next drill or nightly removes it`);
      });
    }
  }
  rec.finishedAt = new Date().toISOString();
  await recordDrill(cfg, rec, (m) => out.warn(m));
  // A usage error (no snapshot to drill, BACKUP_DRILL_DIR a file) is recorded and alerted, and
  // then printed once, by the caller, with its exit code.
  const usage = thrown instanceof L2Error && thrown.exitCode === EXIT.USAGE;
  await report(ctx, rec, scratch, usage);
  if (usage) throw thrown;
  return rec.status === 'ok' ? EXIT.OK : EXIT.FAILED;
}

async function recordDrill(cfg: Config, rec: DrillRecord, warn: (m: string) => void): Promise<void> {
  try {
    await writeDrillRecord(cfg.BACKUP_ROOT, rec);
  } catch (err) {
    warn(`drill record not written: ${errorMessage(err)}`);
  }
}

async function report(ctx: JobContext, rec: DrillRecord, scratch: string | undefined, quiet: boolean): Promise<void> {
  const { out } = ctx;
  const alerter = new Alerter(ctx.cfg, out, 'l2backup');
  const line = describeDrill(rec);
  const cleaned = scratch ? `; ${scratch} removed` : '';
  if (rec.status === 'ok') {
    out.info(`drill OK: ${line}${cleaned}`);
    await alerter.send({ level: 'info', title: 'restore drill ok', message: line, key: 'l2backup:drill' });
    return;
  }
  const culprits = rec.problems?.length ? ` Files: ${rec.problems.slice(0, 10).join(', ')}${rec.mismatches + rec.missing > 10 ? ', ...' : ''}.` : '';
  const title = rec.status === 'interrupted' ? 'restore drill interrupted' : 'restore drill FAILED';
  if (!quiet) out.error(`${title}: ${line}${cleaned}`);
  for (const p of rec.problems ?? []) out.error(`  ${p}`);
  await alerter.send({
    level: rec.status === 'interrupted' ? 'warning' : 'error',
    title,
    message: rec.id ? `${line}.${culprits} The snapshot may not restore as it should: run 'l2backup verify ${rec.id}${rec.from === 'remote' ? ' --remote' : ''}' and take a new snapshot.` : `${line}.`,
    key: 'l2backup:drill',
  });
}
