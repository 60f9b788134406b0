/**
 * `l2health status`, apart from the commander program (l2health.ts) so that l2health-main.ts can
 * run it without loading commander (./light.js).
 */
import { EXIT } from '../errors.js';
import { formatAge } from '../output/index.js';
import { readHealthState } from '../health/run.js';
import { uptime } from '../health/state.js';
import { describeNextRun, nextRun } from '../schedule/index.js';
import type { Context, ProgramSpec } from './light.js';

export const spec: ProgramSpec = { name: 'l2health', description: 'Health checks of L2 Dash HTTP endpoints, SSE streams and the backups', groups: ['alert', 'health'] };

/** the last recorded state of every target, without probing */
export async function statusCommand({ cfg, out: o }: Context, opts: { json?: boolean }): Promise<number> {
  const { state, open } = await readHealthState(cfg, (m) => o.warn(m));
  const next = await nextRun('health checks', /(l2health|health-monitor\.sh)"?\s+(once|health-only|sse-only)/);
  const now = Date.now();
  const rows = Object.entries(state?.targets ?? {}).map(([name, t]) => ({
    name,
    kind: t.kind,
    status: t.status,
    since: t.since,
    lastCheckAt: t.lastCheckAt ?? null,
    lastLatencyMs: t.lastLatencyMs ?? null,
    lastError: t.lastError ?? null,
    uptime24h: uptime(t.history, 86_400, now),
    uptime7d: uptime(t.history, 7 * 86_400, now),
    lastAlert: t.lastAlert ?? null,
    openAlert: open[name] ?? null,
  }));
  if (opts.json) {
    o.json({ lastRunAt: state?.lastRunAt ?? null, targets: rows, nextRun: next });
    return EXIT.OK;
  }
  if (!state) o.print('no health state recorded yet: run l2health once');
  else {
    o.print(`last run: ${state.lastRunAt ? `${state.lastRunAt} (${formatAge(state.lastRunAt)} ago)` : 'never'}`);
    const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(v === 1 ? 0 : 2)}%`);
    o.table(
      ['NAME', 'KIND', 'STATUS', 'SINCE', 'LATENCY', 'UP 24H', 'UP 7D', 'LAST ALERT'],
      rows.map((r) => [r.name, r.kind, r.status.toUpperCase(), `${formatAge(r.since)} ago`, r.lastLatencyMs !== null ? `${r.lastLatencyMs} ms` : '-', pct(r.uptime24h), pct(r.uptime7d), r.lastAlert ? `${r.lastAlert.kind} ${formatAge(r.lastAlert.at)} ago` : '-']),
    );
  }
  o.print(describeNextRun(next));
  if (next.warning) o.warn(next.warning);
  return EXIT.OK;
}
