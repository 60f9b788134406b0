/** l2health: HTTP and SSE checks with thresholds, transitions and reminders (the old health-monitor.sh). */
import { EXIT, UsageError } from '../errors.js';
import type { Output } from '../output/index.js';
import { runChecks, type Mode } from '../health/run.js';
import type { CheckResult } from '../health/types.js';
import { action, addConfigCommand, createProgram, jsonOption, runProgram, subcommand } from './common.js';
import { spec, statusCommand } from './l2health-status.js';


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
          const res = await runChecks(ctx, mode);
          if (opts.json) ctx.out.json({ mode, durationMs: Date.now() - started, results: res.results, alertsRaised: res.alerts });
          else printResults(ctx.out, res.results);
          return res.results.every((r) => r.status === 'up') ? EXIT.OK : EXIT.FAILED;
        }),
      );
  }

  subcommand(program, 'status', 'the last recorded state of every target, without probing: status, since, latency, uptime 24 h / 7 d, last alert')
    .addOption(jsonOption())
    .action(action(spec, statusCommand));

  addConfigCommand(program, spec);
  return program;
}

export function main(argv: string[]): Promise<void> {
  return runProgram(buildProgram(), argv);
}
