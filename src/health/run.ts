/**
 * One l2health run: all checks of the mode in parallel within the run budget, transitions
 * against the recorded state, alerts (made durable before the state is written, delivered
 * after), the state written atomically, then the dead-man's ping.
 * The backup check reads l2backup's run record from the volume: health never imports backup.
 */
import type { Config, HealthTarget } from '../config/index.js';
import type { Output } from '../output/index.js';
import { Alerter, type AlertInput } from '../alert/index.js';
import { acquireLock } from '../state/lock.js';
import { statePaths } from '../state/paths.js';
import { isObject, readJsonState, writeJsonAtomic } from '../state/files.js';
import { formatDuration } from '../output/index.js';
import { checkHttp, httpGet } from './http.js';
import { networkReason } from './probe-errors.js';
import { checkSse } from './sse.js';
import { isHealthState, transition, type HealthState, type OpenAlerts } from './state.js';
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

export async function runChecks(ctx: RunContext, mode: Mode): Promise<RunOutcome> {
  const { cfg, out } = ctx;
  const files = healthFiles(cfg);
  const lock = await acquireLock(files.lock, `l2health ${mode}`, { onTakeover: (m) => out.warn(m) });
  try {
    const alerter = new Alerter(cfg, out, 'l2health');
    const budget = new AbortController();
    const budgetTimer = setTimeout(() => budget.abort(), cfg.HEALTH_RUN_BUDGET_MS);
    const onAbort = () => budget.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    let results: CheckResult[];
    try {
      const probes = selectTargets(cfg.targets, mode).map((t) => (t.kind === 'http' ? checkHttp(t, budget.signal) : checkSse(t, budget.signal)));
      const extra = mode === 'once' ? [checkBackupAge(cfg, files.lastSuccess, (m) => out.warn(m)), checkBuffer(cfg, alerter)] : [];
      results = await Promise.all([...probes, ...extra]);
    } finally {
      clearTimeout(budgetTimer);
      ctx.signal.removeEventListener('abort', onAbort);
    }

    const report = (m: string) => out.warn(m);
    const state = (await readJsonState<HealthState>(files.state, report, isHealthState)) ?? { version: 1, targets: {} };
    const open = (await readJsonState<OpenAlerts>(files.open, report, isObject)) ?? {};
    const openBefore = JSON.stringify(open);
    const now = Date.now();
    const alerts: AlertInput[] = [];
    for (const r of results) {
      const t = transition(r.name, state.targets[r.name], open[r.name], r, now, { failure: cfg.HEALTH_FAILURE_THRESHOLD, success: cfg.HEALTH_SUCCESS_THRESHOLD, reminderMinutes: cfg.HEALTH_REMINDER_MINUTES });
      state.targets[r.name] = t.state;
      if (t.open) open[r.name] = t.open;
      else delete open[r.name];
      if (t.alert) alerts.push(t.alert);
    }
    state.lastRunAt = new Date(now).toISOString();
    // Alerts are durable in the buffer before the state says they were raised: a crash in
    // between can repeat an alert, never lose one.
    await alerter.enqueue(alerts);
    if (JSON.stringify(open) !== openBefore) await writeJsonAtomic(files.open, open);
    await writeJsonAtomic(files.state, state);
    if (alerts.length || (await alerter.buffer.stats()).count > 0) await alerter.deliver();
    if (cfg.HEALTHCHECK_PING_URL) await ping(cfg.HEALTHCHECK_PING_URL, out, ctx.signal);
    return { results, alerts: alerts.length };
  } finally {
    await lock.release();
  }
}

async function ping(url: string, out: Output, signal: AbortSignal): Promise<void> {
  try {
    const status = await httpGet(url, {}, 5000, signal);
    if (status < 200 || status >= 300) out.warn(`dead-man's switch ping (HEALTHCHECK_PING_URL) answered HTTP ${status}`);
  } catch (err) {
    out.warn(`dead-man's switch ping (HEALTHCHECK_PING_URL) failed: ${networkReason(err, 5000)}`);
  }
}

export async function readHealthState(cfg: Config, report: (m: string) => void): Promise<{ state: HealthState | undefined; open: OpenAlerts }> {
  const files = healthFiles(cfg);
  const state = await readJsonState<HealthState>(files.state, report, isHealthState);
  const open = (await readJsonState<OpenAlerts>(files.open, report, isObject)) ?? {};
  return { state, open };
}
