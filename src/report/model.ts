/**
 * The status page's data model: plain data, no I/O. `buildModel` turns what gather.ts read from
 * the volume (RawState) into what render.ts draws, given the time "now", so both ends are pure
 * and testable on fixtures. Every list is bounded here: the page must stay small whatever the
 * state holds.
 */

export type RunStatus = 'ok' | 'partial' | 'pending' | 'failed' | 'unknown';
export type Level = 'up' | 'degraded' | 'down' | 'none';

/** One backup run as recorded in runs.jsonl (fields as l2backup writes them; any may be missing). */
export interface RawRun {
  command?: string;
  status?: string;
  startedAt?: string;
  finishedAt?: string;
  id?: string;
  kind?: string;
  files?: number;
  bytes?: number;
  newBytes?: number;
  durationMs?: number;
  remote?: string;
  error?: string;
  warnings?: number;
}

export interface RawSnapshot {
  id: string;
  kind: string;
  preRestore: boolean;
  files?: number;
  bytes?: number;
  newBytes?: number;
  finishedAt?: string;
  partial: boolean;
  error?: string;
}

export interface RawRemote {
  id: string;
  state: string;
  uploadedAt?: string;
  bytesSent?: number;
  lastError?: string;
  attempts?: number;
}

export interface RawTarget {
  name: string;
  kind?: string;
  status?: string;
  since?: string;
  lastCheckAt?: string;
  lastLatencyMs?: number;
  lastError?: string;
  history: [number, number][];
  latency?: [number, number][];
}

export interface RawAlert {
  level?: string;
  title?: string;
  message?: string;
  source?: string;
  time?: string;
}

export interface RawDead extends RawAlert {
  rejectedAt?: string;
  status?: number;
  error?: string;
}

export interface RawNextRun {
  job: string;
  next?: string;
  expression?: string;
  warning?: string;
}

/** A record another module writes (forecast, drill) whose shape is not agreed: shown as fields. */
export interface RawRecord {
  file: string;
  fields: [string, string][];
}

export interface RawState {
  root: string;
  host?: string;
  runs: RawRun[];
  runsTotal: number;
  snapshots: RawSnapshot[];
  remoteConfigured: boolean;
  remoteUrl?: string;
  remote: RawRemote[];
  forecast?: RawRecord;
  disk?: { freeBytes: number; totalBytes: number };
  health?: { lastRunAt?: string; targets: RawTarget[] };
  openIncidents: Record<string, { kind: string; since: string }>;
  alerts: {
    buffered: RawAlert[];
    bufferedTotal: number;
    spilled: RawAlert[];
    dead: RawDead[];
    deadTotal: number;
    droppedTotal?: number;
    lastSuccessAt?: string;
    lastError?: string;
    lastErrorAt?: string;
  };
  schedule: RawNextRun[];
  drill?: RawRecord;
  /** Things gather.ts could not read: shown on the page, never fatal. */
  problems: string[];
}

export interface RunBar {
  id: string;
  kind: string;
  status: RunStatus;
  finishedAt?: string;
  durationMs?: number;
  bytes?: number;
  newBytes?: number;
  files?: number;
  error?: string;
}

export interface TargetView {
  name: string;
  kind: string;
  status: 'up' | 'degraded' | 'down' | 'unknown';
  since?: string;
  lastCheckAt?: string;
  lastLatencyMs?: number;
  lastError?: string;
  uptime24h: number | null;
  uptime7d: number | null;
  /** worst status per bucket, oldest first: 48 half-hours and 84 two-hour buckets */
  strip24h: Level[];
  strip7d: Level[];
  downChecks24h: number;
  /** the last 24 hours of latency samples, oldest first */
  latency: { t: number; ms: number }[];
  incident?: { kind: string; since: string };
}

export interface ReportModel {
  generatedAt: string;
  now: number;
  root: string;
  host?: string;
  runs: RunBar[];
  runsTotal: number;
  lastRun?: RunBar;
  lastSuccess?: RunBar;
  snapshots: RawSnapshot[];
  snapshotsTotal: number;
  remote: { configured: boolean; url?: string; rows: (RawRemote & { bytes?: number })[]; total: number };
  disk?: { freeBytes: number; totalBytes: number };
  forecast?: RawRecord;
  health?: { lastRunAt?: string; targets: TargetView[]; targetsTotal: number };
  alerts: RawState['alerts'] & { bufferedShown: RawAlert[]; deadShown: RawDead[] };
  schedule: RawNextRun[];
  drill?: RawRecord;
  problems: string[];
}

export const LIMITS = { runs: 30, snapshots: 40, remote: 40, targets: 40, alerts: 15 };

const RUN_STATUSES = new Set(['ok', 'partial', 'pending', 'failed']);

function runBar(r: RawRun): RunBar {
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    id: str(r.id) ?? '?',
    kind: str(r.kind) ?? str(r.command) ?? '?',
    status: RUN_STATUSES.has(r.status as string) ? (r.status as RunStatus) : 'unknown',
    finishedAt: str(r.finishedAt),
    durationMs: num(r.durationMs),
    bytes: num(r.bytes),
    newBytes: num(r.newBytes),
    files: num(r.files),
    error: str(r.error),
  };
}

const CODE_LEVEL: Level[] = ['up', 'degraded', 'down'];
const RANK: Record<Level, number> = { none: -1, up: 0, degraded: 1, down: 2 };

/** The worst status of the checks in each of `count` buckets covering the `seconds` before now. */
export function strip(history: [number, number][], seconds: number, count: number, now: number): Level[] {
  const end = now / 1000;
  const start = end - seconds;
  const size = seconds / count;
  const out: Level[] = new Array<Level>(count).fill('none');
  for (const [t, code] of history) {
    if (t < start || t > end) continue;
    const i = Math.min(count - 1, Math.floor((t - start) / size));
    const level = CODE_LEVEL[code] ?? 'down';
    if (RANK[level] > RANK[out[i]!]) out[i] = level;
  }
  return out;
}

export function uptimeOf(history: [number, number][], seconds: number, now: number): number | null {
  const cutoff = now / 1000 - seconds;
  const window = history.filter(([t]) => t >= cutoff);
  if (window.length === 0) return null;
  return window.filter(([, code]) => code !== 2).length / window.length;
}

function targetView(t: RawTarget, incident: { kind: string; since: string } | undefined, now: number): TargetView {
  const day = 86_400;
  const status = t.status === 'up' || t.status === 'degraded' || t.status === 'down' ? t.status : 'unknown';
  return {
    name: t.name,
    kind: t.kind ?? '?',
    status,
    since: t.since,
    lastCheckAt: t.lastCheckAt,
    lastLatencyMs: t.lastLatencyMs,
    lastError: status === 'up' ? undefined : t.lastError,
    uptime24h: uptimeOf(t.history, day, now),
    uptime7d: uptimeOf(t.history, 7 * day, now),
    strip24h: strip(t.history, day, 48, now),
    strip7d: strip(t.history, 7 * day, 84, now),
    downChecks24h: t.history.filter(([ts, code]) => ts >= now / 1000 - day && code === 2).length,
    latency: (t.latency ?? []).filter(([ts]) => ts >= now / 1000 - day).slice(-300).map(([ts, ms]) => ({ t: ts, ms })),
    incident,
  };
}

/** Targets with trouble first (down, degraded, unknown, up), then by name. */
const ORDER = { down: 0, degraded: 1, unknown: 2, up: 3 };

export function buildModel(raw: RawState, now: number): ReportModel {
  const runs = raw.runs.slice(-LIMITS.runs).map(runBar);
  const all = raw.runs.map(runBar);
  const lastSuccess = [...all].reverse().find((r) => r.status !== 'failed' && r.status !== 'unknown' && (r.kind === 'nightly' || r.kind === 'snapshot'));
  // A remote copy's size: its local snapshot's, else what its run recorded (the local copy may be gone).
  const sizeOf = new Map<string, number | undefined>([...all.map((r) => [r.id, r.bytes] as const), ...raw.snapshots.map((s) => [s.id, s.bytes] as const)]);
  const targets = (raw.health?.targets ?? [])
    .map((t) => targetView(t, raw.openIncidents[t.name], now))
    .sort((a, b) => ORDER[a.status] - ORDER[b.status] || a.name.localeCompare(b.name));
  return {
    generatedAt: new Date(now).toISOString(),
    now,
    root: raw.root,
    host: raw.host,
    runs,
    runsTotal: raw.runsTotal,
    lastRun: all[all.length - 1],
    lastSuccess,
    snapshots: raw.snapshots.slice(-LIMITS.snapshots).reverse(),
    snapshotsTotal: raw.snapshots.length,
    remote: {
      configured: raw.remoteConfigured,
      url: raw.remoteUrl,
      rows: raw.remote
        .slice(-LIMITS.remote)
        .reverse()
        .map((r) => ({ ...r, bytes: sizeOf.get(r.id) })),
      total: raw.remote.length,
    },
    disk: raw.disk,
    forecast: raw.forecast,
    health: raw.health && { lastRunAt: raw.health.lastRunAt, targets: targets.slice(0, LIMITS.targets), targetsTotal: targets.length },
    alerts: { ...raw.alerts, bufferedShown: [...raw.alerts.spilled, ...raw.alerts.buffered].slice(-LIMITS.alerts).reverse(), deadShown: raw.alerts.dead.slice(-LIMITS.alerts).reverse() },
    schedule: raw.schedule,
    drill: raw.drill,
    problems: raw.problems.slice(0, 20),
  };
}
