/** l2health: HTTP and SSE checks with thresholds, transitions and reminders (the old health-monitor.sh). */
import { EXIT, UsageError } from '../errors.js';
import { formatAge } from '../output/index.js';
import type { Output } from '../output/index.js';
import { readHealthState, runChecks, type Mode } from '../health/run.js';
import { uptime } from '../health/state.js';
import type { CheckResult } from '../health/types.js';
import { describeNextRun, nextRun } from '../schedule/index.js';
import { action, addConfigCommand, createProgram, jsonOption, runProgram, subcommand, type ProgramSpec } from './common.js';

const spec: ProgramSpec = { name: 'l2health', description: 'Health checks of L2 Dash HTTP endpoints, SSE streams and the backups', groups: ['alert', 'health'] };

function printResults(out: Output, results: CheckResult[]): void {
  const colour = (s: CheckResult['status']) => (s === 'up' ? out.c.green('UP') : s === 'degraded' ? out.c.yellow('DEGRADED') : out.c.red('DOWN'));
  out.table(
    ['NAME', 'KIND', 'STATUS', 'LATENCY', 'REASON'],
    results.map((r) => [r.name, r.kind, colour(r.status), r.latencyMs !== undefined ? `${r.latencyMs} ms` : '-', r.reason]),
  );
}

export function buildProgram() {
  const program = createProgram(spec);
  const modes: [Mode, string][] = [
    ['once', 'check everything once (HTTP, SSE, backup age, alert buffer), record, alert; exit 1 if anything is down or degraded'],
    ['health-only', 'check the HTTP health endpoints only'],
    ['sse-only', 'check the SSE streams only'],
  ];
  for (const [mode, description] of modes) {
    subcommand(program, mode, description)
      .addOption(jsonOption())
      .action(
        action(spec, async (ctx, opts: { json?: boolean }) => {
          // 'once' always has work: the backup age and the alert buffer need no targets.
          if (mode !== 'once' && !ctx.cfg.targets.some((t) => t.kind === (mode === 'health-only' ? 'http' : 'sse'))) {
            const what = mode === 'health-only' ? 'HEALTH_ENDPOINTS' : 'HEALTH_SSE_STREAMS';
            throw new UsageError(`no targets configured for ${mode}: set ${what} (name=url,...) or HEALTH_CONFIG in the env file`);
          }
          const started = Date.now();
          let res;
          try {
            res = await runChecks(ctx, mode);
          } finally {
            await (await import('../report/index.js')).refreshStatusPage(ctx.cfg, ctx.out);
          }
          if (opts.json) ctx.out.json({ mode, durationMs: Date.now() - started, results: res.results, alertsRaised: res.alerts });
          else printResults(ctx.out, res.results);
          return res.results.every((r) => r.status === 'up') ? EXIT.OK : EXIT.FAILED;
        }),
      );
  }

  subcommand(program, 'status', 'the last recorded state of every target, without probing: status, since, latency, uptime 24 h / 7 d, last alert')
    .addOption(jsonOption())
    .action(
      action(spec, async ({ cfg, out: o }, opts: { json?: boolean }) => {
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
      }),
    );

  addConfigCommand(program, spec);
  return program;
}

export function main(argv: string[]): Promise<void> {
  return runProgram(buildProgram(), argv);
}
