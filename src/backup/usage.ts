/**
 * What the backups cost: bytes on the local volume and on the remote, growth and a forecast
 * against the configured budgets. Reads only the volume and the state files (no live LIST), so
 * `status`, the nightly and the HTML page (src/report/) can all call `storageUsage`.
 *
 * Local bytes come from each snapshot's manifest (the bytes its backup copied rather than
 * linked), or, when asked (`status --du`), are counted as `du -sb` counts them (apparent sizes of
 * files, folders and symlinks; each inode once): each snapshot's `ownBytes` is what it holds that no snapshot before
 * it in time order holds (du's figure for it when all snapshots are given oldest first), its
 * `sharedBytes` the rest (hard links into older snapshots), `uniqueBytes` what no other snapshot
 * holds (freed if it alone is deleted). Remote bytes: every object counts (S3 has no hard
 * links): each uploaded snapshot's file bytes plus its manifest and file list, from the remote
 * record (recorded at upload) or else the local manifest.
 *
 * Growth and forecast: the nightly appends one sample {at, localBytes, remoteBytes} to
 * .l2/backup/usage.jsonl; growth is the newest total minus the last sample at least 30 days
 * older (or the oldest), the forecast a least-squares line over the last 30 days' samples,
 * 30 days on. A forecast past BACKUP_LOCAL_BUDGET_BYTES / BACKUP_REMOTE_BUDGET_BYTES is a warning.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { appendLines, writeJsonAtomic } from '../state/files.js';
import { formatBytes } from '../output/index.js';
import { statePaths } from '../state/paths.js';
import { FILES, MANIFEST, listLocal, idTime } from './layout.js';
import { readManifest } from './manifest.js';
import { BackupRecords, deletedFromRemote } from './records.js';
import { remoteSettings } from './remote.js';

const DAY = 86_400_000;
export const WINDOW_DAYS = 30;
/** The shortest history a forecast is drawn from. */
const MIN_FORECAST_SPAN = DAY;

export interface LocalSnapshotUsage {
  id: string;
  preRestore: boolean;
  /** du -sb of this snapshot alone */
  bytes: number;
  /** du -sb of this snapshot given after every older one: inodes first seen here */
  ownBytes: number;
  /** bytes - ownBytes: hard links into older snapshots */
  sharedBytes: number;
  /** inodes no other snapshot holds: what deleting only this snapshot frees (null: not counted, figures from the manifests) */
  uniqueBytes: number | null;
}

export interface Trend {
  /** bytes now */
  bytes: number;
  /** change over the last 30 days (null: no sample that old or older... and none at all) */
  growth30d: number | null;
  /** days the growth figure spans (less than 30 while the history is young) */
  growthDays: number | null;
  /** the least-squares line over the last 30 days' samples, 30 days on (null: fewer than 2 samples, or all within a day) */
  forecast30d: number | null;
  budget: number | null;
  /** set when the forecast (or the figure now) passes the budget */
  overBudget: string | null;
}

export interface StorageUsage {
  at: string;
  /** counted: 'du' walked every snapshot; 'manifests' took each snapshot's recorded totals */
  local: Trend & { counted: 'du' | 'manifests'; snapshots: LocalSnapshotUsage[] };
  remote: (Trend & { snapshots: { id: string; bytes: number }[]; unknown: string[] }) | null;
  samples: number;
}

export interface UsageSample {
  at: string;
  localBytes: number;
  remoteBytes: number | null;
}

const usageFile = (root: string) => join(statePaths(root).backup, 'usage.jsonl');

/** Local bytes, du-style, oldest snapshot first (main snapshots and pre-restore captures by their time). */
export async function localUsage(root: string): Promise<LocalSnapshotUsage[]> {
  const refs = (await listLocal(root, true)).sort((a, b) => idTime(a.id) - idTime(b.id) || (a.preRestore === b.preRestore ? 0 : a.preRestore ? 1 : -1));
  // Loaded only for `status --du`: picomatch and the walker stay out of plain status's start-up.
  const { walk } = await import('./walk.js');
  const holders = new Map<string, { size: number; first: number; count: number }>();
  const rows: LocalSnapshotUsage[] = [];
  refs.forEach((ref, index) => {
    let bytes = 0;
    let own = 0;
    const seenHere = new Set<string>();
    for (const ev of walk(ref.dir)) {
      if (ev.type !== 'entry') continue;
      const inode = `${ev.st.dev}:${ev.st.ino}`;
      if (seenHere.has(inode)) continue;
      seenHere.add(inode);
      const size = Number(ev.st.size);
      bytes += size;
      const h = holders.get(inode);
      if (h) h.count++;
      else {
        holders.set(inode, { size, first: index, count: 1 });
        own += size;
      }
    }
    rows.push({ id: ref.id, preRestore: ref.preRestore, bytes, ownBytes: own, sharedBytes: bytes - own, uniqueBytes: 0 });
  });
  for (const h of holders.values()) if (h.count === 1) rows[h.first]!.uniqueBytes! += h.size;
  return rows;
}

/** Remote bytes stored, per uploaded snapshot, from the records (and local manifests for older records). */
export async function remoteUsage(cfg: Config, records: BackupRecords): Promise<{ snapshots: { id: string; bytes: number }[]; unknown: string[] }> {
  const local = new Map((await listLocal(cfg.BACKUP_ROOT, true)).map((r) => [r.id, r.dir]));
  const snapshots: { id: string; bytes: number }[] = [];
  const unknown: string[] = [];
  for (const rec of await records.allRemote()) {
    if (rec.state !== 'uploaded' || deletedFromRemote(rec)) continue;
    let bytes = rec.storedBytes;
    const dir = local.get(rec.id);
    if (bytes === undefined && dir) bytes = await snapshotObjectBytes(dir).catch(() => undefined);
    if (bytes === undefined) unknown.push(rec.id);
    else snapshots.push({ id: rec.id, bytes });
  }
  return { snapshots: snapshots.sort((a, b) => (a.id < b.id ? -1 : 1)), unknown };
}

/** The bytes a snapshot's remote copy stores: its files' bytes, its manifest and its file list. */
export async function snapshotObjectBytes(dir: string): Promise<number> {
  const manifest = await readManifest(dir);
  const meta = await Promise.all([MANIFEST, FILES].map(async (n) => (await fs.stat(join(dir, n))).size));
  return manifest.totals.bytes + meta[0]! + meta[1]!;
}

export async function readSamples(root: string): Promise<UsageSample[]> {
  let text: string;
  try {
    text = await fs.readFile(usageFile(root), 'utf8');
  } catch {
    return [];
  }
  const out: UsageSample[] = [];
  for (const line of text.split('\n')) {
    try {
      const v = JSON.parse(line) as UsageSample;
      if (typeof v.at === 'string' && Number.isFinite(Date.parse(v.at)) && typeof v.localBytes === 'number') out.push(v);
    } catch {
      // a torn or foreign line: skipped
    }
  }
  return out.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

/** Least squares over (t, y), evaluated at `at`; null with fewer than two distinct times. */
export function linearForecast(points: { t: number; y: number }[], at: number): number | null {
  if (points.length < 2) return null;
  const n = points.length;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.t - mt) ** 2, 0);
  if (sxx === 0) return null;
  const slope = points.reduce((s, p) => s + (p.t - mt) * (p.y - my), 0) / sxx;
  return Math.max(0, Math.round(my + slope * (at - mt)));
}

export function trend(now: number, bytes: number, history: { t: number; y: number }[], budget: number | undefined, budgetName: string): Trend {
  const points = [...history.filter((p) => p.t <= now && now - p.t <= WINDOW_DAYS * DAY), { t: now, y: bytes }];
  const older = history.filter((p) => p.t <= now - WINDOW_DAYS * DAY).at(-1) ?? history.find((p) => p.t < now);
  // A rate measured over minutes (a snapshot by hand right after the nightly) is no rate to carry
  // 30 days on: the forecast waits for samples at least a day apart.
  const span = Math.max(...points.map((p) => p.t)) - Math.min(...points.map((p) => p.t));
  const forecast = span >= MIN_FORECAST_SPAN ? linearForecast(points, now + WINDOW_DAYS * DAY) : null;
  let overBudget: string | null = null;
  if (budget !== undefined && bytes > budget) overBudget = `${formatBytes(bytes)} stored now is past ${budgetName} (${formatBytes(budget)})`;
  else if (budget !== undefined && forecast !== null && forecast > budget) overBudget = `the 30-day forecast ${formatBytes(forecast)} passes ${budgetName} (${formatBytes(budget)})`;
  return {
    bytes,
    growth30d: older ? bytes - older.y : null,
    growthDays: older ? Math.round(((now - older.t) / DAY) * 10) / 10 : null,
    forecast30d: forecast,
    budget: budget ?? null,
    overBudget,
  };
}

/**
 * The cheap figures of the nightly and of `status`: from each snapshot's manifest totals, with
 * no walk and no per-inode memory (a nightly of a million files must not walk every snapshot
 * again, nor hold a map of every inode; `status`, started by hand and by scripts, must not take
 * seconds on a volume of 30 snapshots). Own bytes are what the snapshot copied rather than
 * linked; the oldest snapshot owns all of its bytes (what it linked from is gone). File bytes
 * only: folders, symlinks and the snapshot's own manifest and file list are not counted.
 * `status --du` counts exactly (localUsage).
 */
export async function localUsageFromManifests(root: string): Promise<LocalSnapshotUsage[]> {
  const refs = (await listLocal(root, true)).sort((a, b) => idTime(a.id) - idTime(b.id) || (a.preRestore === b.preRestore ? 0 : a.preRestore ? 1 : -1));
  const rows: LocalSnapshotUsage[] = [];
  for (const [index, ref] of refs.entries()) {
    const totals = await readManifest(ref.dir).then((m) => m.totals, () => undefined);
    if (!totals) continue;
    const own = index === 0 ? totals.bytes : Math.min(totals.bytes, totals.newBytes);
    rows.push({ id: ref.id, preRestore: ref.preRestore, bytes: totals.bytes, ownBytes: own, sharedBytes: totals.bytes - own, uniqueBytes: null });
  }
  return rows;
}

/** The cost figures, from the volume and the state files only (`exact`: du-style, walking every snapshot; else from the manifests). */
export async function storageUsage(cfg: Config, report: (m: string) => void = () => {}, now = Date.now(), exact = false): Promise<StorageUsage> {
  // Read-only: status calls this without the lock (a corrupt record is repaired by the next run that holds it).
  const records = new BackupRecords(cfg.BACKUP_ROOT, report, { readOnly: true });
  const snaps = exact ? await localUsage(cfg.BACKUP_ROOT) : await localUsageFromManifests(cfg.BACKUP_ROOT);
  const localBytes = snaps.reduce((s, r) => s + r.ownBytes, 0);
  const remote = remoteSettings(cfg) ? await remoteUsage(cfg, records) : null;
  const remoteBytes = remote ? remote.snapshots.reduce((s, r) => s + r.bytes, 0) : null;
  const samples = await readSamples(cfg.BACKUP_ROOT);
  const series = (pick: (s: UsageSample) => number | null) => samples.flatMap((s) => (pick(s) === null ? [] : [{ t: Date.parse(s.at), y: pick(s)! }]));
  return {
    at: new Date(now).toISOString(),
    local: { ...trend(now, localBytes, series((s) => s.localBytes), cfg.BACKUP_LOCAL_BUDGET_BYTES, 'BACKUP_LOCAL_BUDGET_BYTES'), counted: exact ? 'du' : 'manifests', snapshots: snaps },
    remote: remote ? { ...trend(now, remoteBytes!, series((s) => s.remoteBytes), cfg.BACKUP_REMOTE_BUDGET_BYTES, 'BACKUP_REMOTE_BUDGET_BYTES'), ...remote } : null,
    samples: samples.length,
  };
}

/** After a nightly: appends today's sample (the caller holds the backup lock) and returns the figures. */
export async function recordUsage(cfg: Config, report: (m: string) => void): Promise<StorageUsage> {
  const usage = await storageUsage(cfg, report, Date.now());
  const sample: UsageSample = { at: usage.at, localBytes: usage.local.bytes, remoteBytes: usage.remote ? usage.remote.bytes : null };
  await appendLines(usageFile(cfg.BACKUP_ROOT), [JSON.stringify(sample)]);
  await writeJsonAtomic(forecastFile(cfg.BACKUP_ROOT), forecastSummary(usage));
  return usage;
}

/**
 * The status page shows the storage figures without walking the snapshots (it is drawn after
 * every health run): the nightly leaves them, worded for a person, in backup/forecast.json.
 */
export const forecastFile = (root: string) => join(statePaths(root).backup, 'forecast.json');

export function forecastSummary(u: StorageUsage): Record<string, string> {
  const growth = (t: Trend) => (t.growth30d === null ? 'no history yet' : `${t.growth30d >= 0 ? '+' : '-'}${formatBytes(Math.abs(t.growth30d))} over ${t.growthDays} day(s)`);
  const side = (name: string, t: Trend): Record<string, string> => ({
    [`${name} stored`]: formatBytes(t.bytes),
    [`${name} growth (last 30 days)`]: growth(t),
    [`${name} forecast (in 30 days)`]: t.forecast30d === null ? 'needs two nightlies' : formatBytes(t.forecast30d),
    [`${name} budget`]: t.budget === null ? 'none set' : `${formatBytes(t.budget)}${t.overBudget ? ` - OVER: ${t.overBudget}` : ' - within'}`,
  });
  return { 'figures from': u.at, ...side('local', u.local), ...(u.remote ? side('remote', u.remote) : { remote: 'not configured' }) };
}
