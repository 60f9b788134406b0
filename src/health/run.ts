/**
 * One l2health run: all checks of the mode in parallel within the run budget, transitions
 * against the recorded state, alerts (made durable before the state is written, delivered
 * after), the state written atomically, then the dead-man's ping.
 * The backup check reads l2backup's run record from the volume: health never imports backup.
 */
import { createHash } from 'node:crypto';
import type { Config, HealthTarget } from '../config/index.js';
import type { Output } from '../output/index.js';
import { Alerter, type AlertInput } from '../alert/index.js';
import { acquireLock } from '../state/lock.js';
import { statePaths } from '../state/paths.js';
import { isObject, readJsonState, writeJsonAtomic } from '../state/files.js';
import { formatDuration } from '../output/index.js';
import { errorMessage } from '../errors.js';
import { checkHttp } from './http.js';
import { ping } from '../ping/index.js';
import { checkSse } from './sse.js';
import { isHealthState, isOpenAlert, isTargetState, transition, validEntries, type HealthState, type OpenAlert, type OpenAlerts, type TargetState } from './state.js';
import type { CheckResult } from './types.js';

export type Mode = 'once' | 'health-only' | 'sse-only';

export interface RunContext {
  cfg: Config;
  out: Output;
  signal: AbortSignal;
}

export interface RunOutcome {
  results: CheckResult[];
  alerts: number;
}

export function healthFiles(cfg: Config) {
  const p = statePaths(cfg.BACKUP_ROOT);
  return { state: p.healthState, open: `${p.health}/open-alerts.json`, lock: p.lock('health'), lastSuccess: p.backupLastSuccess };
}

function selectTargets(targets: HealthTarget[], mode: Mode): HealthTarget[] {
  if (mode === 'health-only') return targets.filter((t) => t.kind === 'http');
  if (mode === 'sse-only') return targets.filter((t) => t.kind === 'sse');
  return targets;
}

async function checkBackupAge(cfg: Config, file: string, report: (m: string) => void): Promise<CheckResult> {
  const rec = await readJsonState<{ finishedAt?: string; id?: string; remotePendingSince?: string }>(file, report, isObject);
  const maxMs = cfg.BACKUP_MAX_AGE_HOURS * 3_600_000;
  if (!rec?.finishedAt || !Number.isFinite(Date.parse(rec.finishedAt))) return { name: 'backup', kind: 'backup', status: 'down', reason: 'no successful backup recorded yet (run l2backup nightly; check crontab -l)' };
  const age = Date.now() - Date.parse(rec.finishedAt);
  if (age > maxMs) return { name: 'backup', kind: 'backup', status: 'down', reason: `last successful backup ${rec.id ?? ''} is ${formatDuration(age)} old (max ${cfg.BACKUP_MAX_AGE_HOURS} h)` };
  // l2backup records how long a backup's remote copy has been pending (local ok, upload failed).
  const pendingMs = rec.remotePendingSince ? Date.now() - Date.parse(rec.remotePendingSince) : NaN;
  const pending = Number.isFinite(pendingMs) ? `; local ok, remote pending since ${rec.remotePendingSince}` : '';
  if (pendingMs > maxMs) return { name: 'backup', kind: 'backup', status: 'down', reason: `remote copy pending for ${formatDuration(pendingMs)} (max ${cfg.BACKUP_MAX_AGE_HOURS} h): last successful backup ${rec.id ?? ''} ${formatDuration(age)} ago${pending}; see 'l2backup status'` };
  return { name: 'backup', kind: 'backup', status: 'up', reason: `last successful backup ${rec.id ?? ''} ${formatDuration(age)} ago${pending}` };
}

async function checkBuffer(cfg: Config, alerter: Alerter): Promise<CheckResult> {
  const stats = await alerter.buffer.stats();
  if (stats.count > cfg.HEALTH_BUFFER_WARN) return { name: 'alert-buffer', kind: 'alert-buffer', status: 'degraded', reason: `${stats.count} undelivered alerts buffered (more than ${cfg.HEALTH_BUFFER_WARN}); check the webhook with 'l2alert test'` };
  return { name: 'alert-buffer', kind: 'alert-buffer', status: 'up', reason: `${stats.count} buffered` };
}

/**
 * A stable id for a transition's alert: derived from the state it was computed from, so a run
 * killed after buffering the alert and before recording the state raises it again, on the next
 * run, under the same id (dropped as a duplicate there and by receivers).
 */
function transitionId(name: string, title: string, prev: TargetState | undefined, open: OpenAlert | undefined, now: number): string {
  const basis = prev?.lastCheckAt ?? `hour ${Math.floor(now / 3_600_000)}`;
  const hex = createHash('sha256').update(JSON.stringify(['l2health', name, title, basis, open?.since ?? '', open?.lastAlertAt ?? ''])).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export async function runChecks(ctx: RunContext, mode: Mode): Promise<RunOutcome> {
  const { cfg, out } = ctx;
  // HEALTH_RUN_BUDGET_MS bounds everything from here: checks, state, delivery and the ping.
  const deadline = Date.now() + cfg.HEALTH_RUN_BUDGET_MS;
  const remaining = () => Math.max(0, deadline - Date.now());
  // Checks leave a real share of the budget for delivering their alerts and the ping: a third
  // of it at most, the time of one delivery attempt at least when that fits.
  const reserve = cfg.ALERT_WEBHOOK_URL || cfg.HEALTHCHECK_PING_URL ? Math.min(cfg.ALERT_TIMEOUT_MS, Math.floor(cfg.HEALTH_RUN_BUDGET_MS / 3)) : 0;
  const files = healthFiles(cfg);
  const lock = await acquireLock(files.lock, `l2health ${mode}`, { onTakeover: (m) => out.warn(m) });
  try {
    const report = (m: string) => out.warn(m);
    const alerter = new Alerter(cfg, out, 'l2health');
    // Everything delivery needs that does not depend on the results is done before the checks,
    // out of their share: the HTTP client's import, the state files, the buffer's ids. Not
    // during them: loading got blocks the event loop long enough to fake a gap in an SSE stream.
    const [, read, openRead, bufferedBefore] = await Promise.all([
      alerter.configured ? alerter.preload().catch(() => undefined) : undefined,
      readJsonState<HealthState>(files.state, report, isHealthState),
      readJsonState<Record<string, unknown>>(files.open, report, isObject),
      alerter.configured ? alerter.buffer.load().catch(() => []) : [],
    ]);
    const budget = new AbortController();
    const budgetTimer = setTimeout(() => budget.abort(), Math.max(0, remaining() - reserve));
    const onAbort = () => budget.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    let results: CheckResult[];
    try {
      const probes = selectTargets(cfg.targets, mode).map((t) => (t.kind === 'http' ? checkHttp(t, budget.signal) : checkSse(t, budget.signal)).catch((err: unknown): CheckResult => ({ name: t.name, kind: t.kind, status: 'down', reason: `the check failed: ${errorMessage(err)}` })));
      const extra = mode === 'once' ? [checkBackupAge(cfg, files.lastSuccess, (m) => out.warn(m)), checkBuffer(cfg, alerter)] : [];
      results = await Promise.all([...probes, ...extra]);
    } finally {
      clearTimeout(budgetTimer);
      ctx.signal.removeEventListener('abort', onAbort);
    }

    const state: HealthState = { ...(read ?? { version: 1 }), targets: validEntries(read?.targets, isTargetState, files.state, report) };
    const open = validEntries(openRead, isOpenAlert, files.open, report);
    const openBefore = JSON.stringify(open);
    const now = Date.now();
    const alerts: AlertInput[] = [];
    for (const r of results) {
      const prev = state.targets[r.name];
      const t = transition(r.name, prev, open[r.name], r, now, { failure: cfg.HEALTH_FAILURE_THRESHOLD, success: cfg.HEALTH_SUCCESS_THRESHOLD, reminderMinutes: cfg.HEALTH_REMINDER_MINUTES });
      if (t.alert) alerts.push({ ...t.alert, id: transitionId(r.name, t.alert.title, prev, open[r.name], now) });
      state.targets[r.name] = t.state;
      if (t.open) open[r.name] = t.open;
      else delete open[r.name];
    }
    state.lastRunAt = new Date(now).toISOString();
    // A transition raised by a run that died before recording it is already buffered, same id.
    // (An unreadable buffer only costs the check: the alert is then buffered again, same id.)
    const buffered = new Set<string>(bufferedBefore.map((a) => a.id));
    const fresh = alerts.filter((a) => !buffered.has(a.id!));
    // Alerts are durable in the buffer before the state says they were raised: a crash in
    // between can repeat an alert (same id), never lose one.
    await alerter.enqueue(fresh);
    if (JSON.stringify(open) !== openBefore) await writeJsonAtomic(files.open, open);
    await writeJsonAtomic(files.state, state);
    // Delivery and the dead-man's ping share what is left of the budget, side by side.
    // The delivery deadline counts from now, within the run's.
    alerter.setDeadline(Math.min(deadline, Date.now() + cfg.ALERT_BUDGET_MS));
    const delivering = alerts.length || (await alerter.buffer.stats()).count > 0 ? deliverWithin(alerter, cfg, out) : undefined;
    const pinging = cfg.HEALTHCHECK_PING_URL ? deadManPing(cfg, cfg.HEALTHCHECK_PING_URL, out, ctx.signal, Math.min(5000, remaining()), results, state) : undefined;
    await Promise.all([delivering, pinging]);
    return { results, alerts: alerts.length };
  } finally {
    await lock.release();
  }
}

async function deliverWithin(alerter: Alerter, cfg: Config, out: Output): Promise<void> {
  if (!alerter.configured) return;
  const res = await alerter.deliver();
  if (res.remaining > 0 && !res.busy) out.warn(`${res.remaining} alert(s) left in the buffer for the next run (${res.error ?? 'not delivered'}; run budget HEALTH_RUN_BUDGET_MS=${cfg.HEALTH_RUN_BUDGET_MS})`);
}

/**
 * The dead-man's switch: the plain URL after every completed run; with HEALTHCHECK_PING_FAIL,
 * `<url>/fail` while a target is DOWN (by its recorded state, so after the failure threshold,
 * as the alerts), with the down targets as the body.
 */
async function deadManPing(cfg: Config, url: string, out: Output, signal: AbortSignal, timeoutMs: number, results: CheckResult[], state: HealthState): Promise<void> {
  const down = cfg.HEALTHCHECK_PING_FAIL ? results.filter((r) => state.targets[r.name]?.status === 'down') : [];
  const body = down.length ? out.scrub(`l2health: ${down.length} target(s) down\n${down.map((r) => `${r.name} (${r.kind}): ${state.targets[r.name]?.lastError ?? r.reason}`).join('\n')}\n`) : undefined;
  const warning = await ping(url, { suffix: down.length ? 'fail' : undefined, body, timeoutMs, signal, label: "dead-man's switch ping (HEALTHCHECK_PING_URL)" });
  if (warning) out.warn(warning.replace(' skipped: the run\'s time budget was used up', ' skipped: the run budget (HEALTH_RUN_BUDGET_MS) was used up'));
}

export async function readHealthState(cfg: Config, report: (m: string) => void): Promise<{ state: HealthState | undefined; open: OpenAlerts }> {
  const files = healthFiles(cfg);
  const state = await readJsonState<HealthState>(files.state, report, isHealthState);
  const open = validEntries(await readJsonState<Record<string, unknown>>(files.open, report, isObject), isOpenAlert, files.open, report);
  return { state: state && { ...state, targets: validEntries(state.targets, isTargetState, files.state, report) }, open };
}
