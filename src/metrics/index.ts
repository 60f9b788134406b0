/**
 * Prometheus textfile metrics: `$L2_METRICS_DIR/l2ops.prom`, rewritten after every run of every
 * program (src/cli/common.ts calls writeMetrics at the end of a run).
 *
 * One file, many writers: each writer renders EVERY family (backup, alert, health) from the
 * state files on the volume, never from what it alone knows, so there is nothing to merge and
 * nothing one program can drop of another's. Writers take a short mutex on the volume
 * (`.l2/locks/metrics.lock`) around read-render-rename, so the last rename always carries the
 * newest state: without it a slow writer could rename a view read before a faster one's. The
 * file itself is replaced by rename(2) of a temp file in the same folder whose name does not end
 * in `.prom` (the collector ignores it), so the collector never reads a torn file.
 * Reading here is side-effect free: no corrupt file is moved aside, no record rebuilt; whatever
 * cannot be read is left out of the file (and the owning program reports it on its next run).
 */
import { promises as fs, constants as C } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { statePaths } from '../state/paths.js';
import { acquireLock } from '../state/lock.js';
import { LockedError } from '../errors.js';
import { tempName } from '../state/files.js';
import { renderFamilies, type Family, type Sample } from './exposition.js';

export const METRICS_FILE = 'l2ops.prom';

/** The collector runs as another user (node_exporter's): the file must be readable by it. */
const METRICS_MODE = 0o644;

type Json = Record<string, unknown>;

async function readJson(path: string): Promise<Json | undefined> {
  try {
    const fh = await fs.open(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    try {
      if (!(await fh.stat()).isFile()) return undefined;
      const v: unknown = JSON.parse(await fh.readFile('utf8'));
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

async function readLines(path: string): Promise<string[]> {
  try {
    const fh = await fs.open(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    try {
      if (!(await fh.stat()).isFile()) return [];
      return (await fh.readFile('utf8')).split('\n').filter((l) => l.trim() !== '');
    } finally {
      await fh.close();
    }
  } catch {
    return [];
  }
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const seconds = (iso: unknown): number | undefined => {
  const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t / 1000 : undefined;
};
const one = (value: number | undefined): Sample[] => (value === undefined ? [] : [{ value }]);

export const RUN_STATUSES = ['ok', 'partial', 'pending', 'failed'] as const;

async function backupFamilies(root: string): Promise<Family[]> {
  const p = statePaths(root);
  const [lastRun, lastSuccess, runLines] = await Promise.all([readJson(p.backupLastRun), readJson(p.backupLastSuccess), readLines(p.backupRuns)]);
  const remoteNames = await fs.readdir(p.backupRemote).catch(() => [] as string[]);
  const remote = (await Promise.all(remoteNames.filter((n) => /^\d{8}-\d{6}\.json$/.test(n)).map((n) => readJson(join(p.backupRemote, n))))).filter((r): r is Json => r !== undefined);

  // Per-source sizes of the last successful backup, from its manifest.
  const sourceSamples: { bytes: Sample[]; files: Sample[] } = { bytes: [], files: [] };
  const successId = str(lastSuccess?.id);
  if (successId && /^\d{8}-\d{6}$/.test(successId)) {
    const manifest = await readJson(join(root, successId, '.l2-manifest.json'));
    for (const s of Array.isArray(manifest?.sources) ? (manifest.sources as Json[]) : []) {
      const name = str(s?.name);
      if (name === undefined) continue;
      if (num(s.bytes) !== undefined) sourceSamples.bytes.push({ labels: { source: name }, value: num(s.bytes)! });
      if (num(s.files) !== undefined) sourceSamples.files.push({ labels: { source: name }, value: num(s.files)! });
    }
  }

  // What the remote holds: every snapshot recorded as uploaded, at its size from the run records.
  const sizeById = new Map<string, number>();
  for (const line of runLines) {
    try {
      const r = JSON.parse(line) as Json;
      const id = str(r.id);
      if (id && num(r.bytes) !== undefined) sizeById.set(id, num(r.bytes)!);
    } catch {
      // a torn line: its run is simply not counted
    }
  }
  const uploaded = remote.filter((r) => r.state === 'uploaded');
  const remoteConfigured = remote.length > 0;
  const status = str(lastRun?.status);
  return [
    { name: 'l2backup_last_run_timestamp_seconds', type: 'gauge', help: 'When the last l2backup run (nightly, snapshot or pre-restore capture) finished, successful or not.', samples: one(seconds(lastRun?.finishedAt)) },
    { name: 'l2backup_last_success_timestamp_seconds', type: 'gauge', help: 'When the last successful nightly or snapshot finished (its local snapshot complete or partial; see l2backup_last_run_status).', samples: one(seconds(lastSuccess?.finishedAt)) },
    { name: 'l2backup_last_run_duration_seconds', type: 'gauge', help: 'How long the last l2backup run took.', samples: one(num(lastRun?.durationMs) === undefined ? undefined : num(lastRun!.durationMs)! / 1000) },
    {
      name: 'l2backup_last_run_status',
      type: 'gauge',
      help: 'Outcome of the last l2backup run: 1 for its status (ok, partial: a source missing or unreadable, pending: local ok and remote upload pending, failed), 0 for the others.',
      samples: status && (RUN_STATUSES as readonly string[]).includes(status) ? RUN_STATUSES.map((s) => ({ labels: { status: s }, value: s === status ? 1 : 0 })) : [],
    },
    { name: 'l2backup_last_run_new_bytes', type: 'gauge', help: 'Bytes copied (not hard-linked) by the last l2backup run.', samples: one(num(lastRun?.newBytes)) },
    { name: 'l2backup_snapshot_bytes', type: 'gauge', help: 'Size of each source in the last successful backup.', samples: sourceSamples.bytes },
    { name: 'l2backup_snapshot_files', type: 'gauge', help: 'Files of each source in the last successful backup.', samples: sourceSamples.files },
    { name: 'l2backup_remote_pending_snapshots', type: 'gauge', help: 'Snapshots whose remote upload is still pending (0 without a remote).', samples: [{ value: remote.filter((r) => r.state === 'pending').length }] },
    {
      name: 'l2backup_remote_stored_bytes',
      type: 'gauge',
      help: 'Bytes held on the remote: the sizes of every snapshot recorded as uploaded (each remote snapshot is a full copy).',
      samples: remoteConfigured ? [{ value: uploaded.reduce((sum, r) => sum + (sizeById.get(str(r.id) ?? '') ?? 0), 0) }] : [],
    },
  ];
}

async function alertFamilies(cfg: Config): Promise<Family[]> {
  const buffer = cfg.ALERT_BUFFER_FILE;
  const [lines, spilled, dead, delivery] = await Promise.all([
    readLines(buffer),
    fs.readdir(`${buffer}.spill`).then((n) => n.filter((x) => x.endsWith('.json')).length, () => 0),
    readLines(`${buffer}.dead`),
    readJson(statePaths(cfg.BACKUP_ROOT).alertDelivery),
  ]);
  return [
    { name: 'l2alert_buffered_alerts', type: 'gauge', help: 'Alerts waiting for delivery to the webhook (buffer and spill files).', samples: [{ value: lines.length + spilled }] },
    { name: 'l2alert_dead_letter_alerts', type: 'gauge', help: 'Alerts the webhook rejected for good, kept in the dead-letter file.', samples: [{ value: dead.length }] },
    { name: 'l2alert_dropped_alerts_total', type: 'counter', help: 'Alerts dropped because the buffer was over ALERT_BUFFER_MAX.', samples: [{ value: num(delivery?.droppedTotal) ?? 0 }] },
    { name: 'l2alert_last_delivery_success_timestamp_seconds', type: 'gauge', help: 'When a webhook message was last delivered.', samples: one(seconds(delivery?.lastSuccessAt)) },
  ];
}

async function healthFamilies(root: string): Promise<Family[]> {
  const state = await readJson(statePaths(root).healthState);
  const targets = state?.targets && typeof state.targets === 'object' ? Object.entries(state.targets as Record<string, Json>) : [];
  const success: Sample[] = [];
  const duration: Sample[] = [];
  const gap: Sample[] = [];
  for (const [name, t] of targets) {
    if (!t || typeof t !== 'object') continue;
    const kind = str(t.kind) ?? 'unknown';
    if (t.status === 'up' || t.status === 'degraded' || t.status === 'down') success.push({ labels: { target: name, kind }, value: t.status === 'down' ? 0 : 1 });
    if (num(t.lastLatencyMs) !== undefined) duration.push({ labels: { target: name }, value: num(t.lastLatencyMs)! / 1000 });
    if (num(t.lastMaxGapMs) !== undefined) gap.push({ labels: { target: name }, value: num(t.lastMaxGapMs)! / 1000 });
  }
  return [
    { name: 'l2health_last_run_timestamp_seconds', type: 'gauge', help: 'When the last l2health run finished its checks.', samples: one(seconds(state?.lastRunAt)) },
    { name: 'l2health_probe_success', type: 'gauge', help: 'Whether a health target is up (1: up or degraded, 0: down), by its recorded state (after HEALTH_FAILURE_THRESHOLD).', samples: success },
    { name: 'l2health_probe_duration_seconds', type: 'gauge', help: 'Latency of the last check of a target (HTTP: the response; SSE: the first frame).', samples: duration },
    { name: 'l2health_sse_max_gap_seconds', type: 'gauge', help: 'Longest gap between frames of an SSE stream in the last observation window (HEALTH_SSE_OBSERVE_MS).', samples: gap },
  ];
}

/** Every family, from the state files under BACKUP_ROOT. */
export async function collectMetrics(cfg: Config): Promise<Family[]> {
  const [backup, alert, health] = await Promise.all([backupFamilies(cfg.BACKUP_ROOT), alertFamilies(cfg), healthFamilies(cfg.BACKUP_ROOT)]);
  return [...backup, ...alert, ...health];
}

/** Every state file the metrics read, by size and mtime (ns): equal signatures, equal metrics. */
async function stateSignature(cfg: Config): Promise<string> {
  const p = statePaths(cfg.BACKUP_ROOT);
  const b = cfg.ALERT_BUFFER_FILE;
  const paths = [p.backupLastRun, p.backupLastSuccess, p.backupRuns, p.backupRemote, b, `${b}.spill`, `${b}.dead`, p.alertDelivery, p.healthState];
  const stats = await Promise.all(paths.map((f) => fs.lstat(f, { bigint: true }).then((st) => `${st.size}:${st.mtimeNs}:${st.ino}`, () => '-')));
  return stats.join(' ');
}

/** temp file in the same folder, then rename(2); the temp name is hidden and does not end in .prom. */
async function replaceFile(target: string, text: string): Promise<void> {
  const tmp = tempName(target);
  try {
    const fh = await fs.open(tmp, 'wx', METRICS_MODE);
    try {
      await fh.writeFile(text);
      await fh.chmod(METRICS_MODE); // the umask must not hide it from the collector
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/**
 * Rewrites `$L2_METRICS_DIR/l2ops.prom` from the volume's state. Resolves with a warning line
 * when it could not (the run's own outcome never depends on it), undefined when written or off.
 */
export async function writeMetrics(cfg: Config, onTakeover?: (m: string) => void): Promise<string | undefined> {
  const dir = cfg.L2_METRICS_DIR;
  if (!dir) return undefined;
  const target = join(dir, METRICS_FILE);
  try {
    // A volume that cannot hold the lock (full, read-only) cannot change its state either:
    // the file is then written without it (acquireLock's 'proceed'), the metrics matter most then.
    // A holder that keeps the lock past the wait (frozen) is not waited for either: this writer's
    // file then goes out unlocked, and the holder's re-check below re-renders if it lands later.
    const lock = await acquireLock(statePaths(cfg.BACKUP_ROOT).lock('metrics'), 'metrics', { waitMs: 5000, onTakeover, ifUnwritable: 'proceed' }).catch((err: unknown) => {
      if (err instanceof LockedError) return { release: async () => {} };
      throw err;
    });
    try {
      // Rendered again when the state changed while it was being read and written (a writer
      // that could not have the lock in time, or one frozen in between): the last file out
      // always reflects the last state in, at the cost of a re-render now and then.
      for (let round = 0; round < 3; round++) {
        const before = await stateSignature(cfg);
        await replaceFile(target, renderFamilies(await collectMetrics(cfg)));
        if ((await stateSignature(cfg)) === before) break;
      }
    } finally {
      await lock.release();
    }
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `metrics not written to ${target} (L2_METRICS_DIR): ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
  }
}
