/**
 * Per-target health state and the transition rules, as pure functions of (state, result, now)
 * so the clock can be injected in tests.
 * - DOWN/DEGRADED after HEALTH_FAILURE_THRESHOLD consecutive bad checks, UP again after
 *   HEALTH_SUCCESS_THRESHOLD good ones, and a switch between DOWN and DEGRADED only after
 *   HEALTH_FAILURE_THRESHOLD checks of the new one: no flapping alerts.
 * - One alert per transition; while down, a reminder every HEALTH_REMINDER_MINUTES.
 * - Open alerts are also kept in their own file, so an alert left open by a lost state file is
 *   still resolved on the next good check.
 */
import type { AlertInput } from '../alert/index.js';
import type { CheckResult, CheckStatus } from './types.js';
import { formatDuration } from '../output/index.js';
import { escapeControl } from '../errors.js';

export type TargetStatus = CheckStatus | 'unknown';

export interface TargetState {
  kind: CheckResult['kind'];
  status: TargetStatus;
  since: string;
  consecutiveBad: number;
  consecutiveGood: number;
  /** The latest bad status and how many checks in a row had it: a switch between DOWN and DEGRADED needs the failure threshold too. */
  streak?: { status: CheckStatus; count: number };
  lastCheckAt?: string;
  lastLatencyMs?: number;
  /** SSE: the longest gap between frames in the last observation window (the metrics read it) */
  lastMaxGapMs?: number;
  lastError?: string;
  lastAlert?: { kind: string; level: string; at: string };
  /** [unix seconds, 0 up | 1 degraded | 2 down], 7 days at most */
  history: [number, number][];
  /**
   * [unix seconds, latency ms] of the checks that measured one, 7 days and LATENCY_MAX entries
   * at most (the status page's sparkline). Optional: state written before it existed lacks it.
   */
  latency?: [number, number][];
}

export interface HealthState {
  version: 1;
  lastRunAt?: string;
  targets: Record<string, TargetState>;
}

export interface OpenAlert {
  kind: 'down' | 'degraded';
  since: string;
  lastAlertAt: string;
}

export type OpenAlerts = Record<string, OpenAlert>;

export interface Thresholds {
  failure: number;
  success: number;
  reminderMinutes: number;
}

const HISTORY_SECONDS = 7 * 86_400;
const HISTORY_MAX = 2100;
const LATENCY_MAX = 2100;

export function emptyTarget(kind: CheckResult['kind'], now: number): TargetState {
  return { kind, status: 'unknown', since: new Date(now).toISOString(), consecutiveBad: 0, consecutiveGood: 0, history: [] };
}

export interface TransitionOutcome {
  state: TargetState;
  open: OpenAlert | undefined;
  alert?: AlertInput;
}

function alertFor(name: string, r: CheckResult, kind: 'down' | 'degraded' | 'reminder', since: string, now: number): AlertInput {
  const key = `l2health:${name}`;
  if (kind === 'degraded') return { level: 'warning', title: `${name} DEGRADED`, message: `${name} (${r.kind}) is degraded: ${r.reason}`, source: `l2health/${name}`, key };
  const down = formatDuration(now - Date.parse(since));
  if (kind === 'reminder') return { level: 'error', title: `${name} still DOWN`, message: `${name} (${r.kind}) has been down for ${down}: ${r.reason}`, source: `l2health/${name}`, key };
  return { level: 'error', title: `${name} DOWN`, message: `${name} (${r.kind}) is down: ${r.reason}`, source: `l2health/${name}`, key };
}

export function transition(name: string, prev: TargetState | undefined, open: OpenAlert | undefined, r: CheckResult, now: number, th: Thresholds): TransitionOutcome {
  const iso = new Date(now).toISOString();
  const s: TargetState = prev ? { ...prev, history: [...prev.history], ...(prev.latency ? { latency: [...prev.latency] } : {}) } : emptyTarget(r.kind, now);
  s.kind = r.kind;
  s.lastCheckAt = iso;
  s.lastLatencyMs = r.latencyMs;
  s.lastMaxGapMs = r.sse?.longestGapMs;
  s.history.push([Math.floor(now / 1000), r.status === 'up' ? 0 : r.status === 'degraded' ? 1 : 2]);
  const cutoff = Math.floor(now / 1000) - HISTORY_SECONDS;
  while (s.history.length > HISTORY_MAX || (s.history.length && s.history[0]![0] < cutoff)) s.history.shift();
  if (r.latencyMs !== undefined && Number.isFinite(r.latencyMs)) {
    const latency = s.latency ?? [];
    latency.push([Math.floor(now / 1000), Math.round(r.latencyMs)]);
    let drop = Math.max(0, latency.length - LATENCY_MAX);
    while (drop < latency.length && latency[drop]![0] < cutoff) drop++;
    s.latency = drop ? latency.slice(drop) : latency;
  }

  if (r.status === 'up') {
    s.consecutiveGood++;
    s.consecutiveBad = 0;
    if (s.consecutiveGood >= th.success && s.status !== 'up') {
      const wasSince = open?.since ?? s.since;
      s.status = 'up';
      s.since = iso;
      s.lastError = undefined;
      if (open) {
        const alert: AlertInput = { level: 'info', title: `${name} RESOLVED`, message: `${name} (${r.kind}) is up again after ${formatDuration(now - Date.parse(wasSince))} ${open.kind}: ${r.reason}`, source: `l2health/${name}`, key: `l2health:${name}` };
        s.lastAlert = { kind: 'resolved', level: 'info', at: iso };
        return { state: s, open: undefined, alert };
      }
    }
    return { state: s, open: s.status === 'up' ? undefined : open };
  }

  s.consecutiveBad++;
  s.consecutiveGood = 0;
  s.lastError = r.reason;
  s.streak = s.streak?.status === r.status ? { status: r.status, count: s.streak.count + 1 } : { status: r.status, count: 1 };
  if (s.consecutiveBad < th.failure) return { state: s, open };
  const wasBad = s.status === 'down' || s.status === 'degraded';
  // From up (or unknown): bad for the threshold. Between DOWN and DEGRADED: the new one for the threshold.
  if (!wasBad || (s.status !== r.status && s.streak.count >= th.failure)) {
    s.status = r.status;
    s.since = open?.since && open.kind === r.status ? open.since : iso;
    const kind = r.status as 'down' | 'degraded';
    if (open && open.kind === kind) return { state: s, open }; // already alerted before a lost state file
    const alert = alertFor(name, r, kind, s.since, now);
    s.lastAlert = { kind, level: alert.level, at: iso };
    return { state: s, open: { kind, since: s.since, lastAlertAt: iso }, alert };
  }
  // Still bad (whatever this check's kind): a reminder while DOWN, at most every reminderMinutes.
  if (s.status === 'down' && th.reminderMinutes > 0 && open && now - Date.parse(open.lastAlertAt) >= th.reminderMinutes * 60_000) {
    const alert = alertFor(name, { ...r, status: 'down' }, 'reminder', open.since, now);
    s.lastAlert = { kind: 'reminder', level: alert.level, at: iso };
    return { state: s, open: { ...open, lastAlertAt: iso }, alert };
  }
  return { state: s, open: open ?? { kind: s.status as 'down' | 'degraded', since: s.since, lastAlertAt: s.lastAlert?.at ?? iso } };
}

export function uptime(history: [number, number][], seconds: number, now: number): number | null {
  const cutoff = Math.floor(now / 1000) - seconds;
  const window = history.filter(([t]) => t >= cutoff);
  if (window.length === 0) return null;
  return window.filter(([, code]) => code !== 2).length / window.length;
}

export function isHealthState(v: unknown): v is HealthState {
  return Boolean(v && typeof v === 'object' && (v as HealthState).version === 1 && (v as HealthState).targets && typeof (v as HealthState).targets === 'object' && !Array.isArray((v as HealthState).targets));
}

const KINDS = new Set(['http', 'sse', 'backup', 'alert-buffer']);
const STATUSES = new Set(['up', 'down', 'degraded', 'unknown']);
const isCount = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isTime = (v: unknown) => typeof v === 'string' && Number.isFinite(Date.parse(v));
const optional = (v: unknown, ok: (v: unknown) => boolean) => v === undefined || ok(v);

/** One target's recorded state, as this version writes it (a hand edit or another version may not). */
export function isTargetState(v: unknown): v is TargetState {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const t = v as Record<string, unknown>;
  return (
    KINDS.has(t.kind as string) &&
    STATUSES.has(t.status as string) &&
    isTime(t.since) &&
    isCount(t.consecutiveBad) &&
    isCount(t.consecutiveGood) &&
    Array.isArray(t.history) &&
    t.history.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'number' && typeof h[1] === 'number') &&
    optional(t.streak, (s) => Boolean(s && typeof s === 'object' && STATUSES.has((s as { status: string }).status) && isCount((s as { count: unknown }).count))) &&
    optional(t.lastCheckAt, isTime) &&
    optional(t.lastLatencyMs, (n) => typeof n === 'number') &&
    optional(t.latency, (l) => Array.isArray(l) && l.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'number' && typeof h[1] === 'number')) &&
    optional(t.lastError, (e) => typeof e === 'string') &&
    optional(t.lastAlert, (a) => Boolean(a && typeof a === 'object' && isTime((a as { at: unknown }).at)))
  );
}

export function isOpenAlert(v: unknown): v is OpenAlert {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return (o.kind === 'down' || o.kind === 'degraded') && isTime(o.since) && isTime(o.lastAlertAt);
}

/**
 * The valid entries of a name map read from a state file; a malformed one is dropped with a
 * warning (that target starts afresh), so one bad entry cannot break every run.
 */
export function validEntries<T>(from: Record<string, unknown> | undefined, ok: (v: unknown) => v is T, file: string, report: (m: string) => void): Record<string, T> {
  const out = nameMap<T>(undefined);
  if (!from) return out;
  for (const k of Object.keys(from)) {
    const v = from[k];
    if (ok(v)) Object.defineProperty(out, k, { value: v, writable: true, enumerable: true, configurable: true });
    else report(`${file}: the entry for "${escapeControl(k.slice(0, 64))}" is malformed; dropped (that target starts afresh)`);
  }
  return out;
}

/**
 * A copy without a prototype, so target names such as `constructor`, `toString` or `__proto__`
 * are plain keys: no inherited values on reading, no prototype change on writing.
 */
export function nameMap<T>(from: Record<string, T> | undefined): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  if (from) for (const k of Object.keys(from)) Object.defineProperty(out, k, { value: from[k], writable: true, enumerable: true, configurable: true });
  return out;
}
