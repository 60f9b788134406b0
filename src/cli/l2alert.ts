/** l2alert: send, test and flush alerts; show the buffer (the old alert.sh). */
import { ALERT_LEVELS, type AlertLevel } from '../alert/types.js';
import { EXIT, UsageError } from '../errors.js';
import { bufferStatusCommand, spec } from './l2alert-status.js';

// Domain modules load inside the commands that use them: `config` and `buffer-status` stay
// close to bare Node start-up (bench/startup.mjs).
const alerter = async (...args: ConstructorParameters<typeof import('../alert/index.js').Alerter>) => new (await import('../alert/index.js')).Alerter(...args);
import { Option, action, addConfigCommand, createProgram, jsonOption, runProgram, subcommand } from './common.js';


export function buildProgram() {
  const program = createProgram(spec);

  subcommand(program, 'test', 'send a test alert; exit 0 when delivered, 1 when buffered, 2 when no webhook is configured').action(
    action(spec, async ({ cfg, out }) => {
      if (!cfg.ALERT_WEBHOOK_URL) throw new UsageError('ALERT_WEBHOOK_URL is not set, so alerts are log lines only; set it in the env file (see l2alert config)');
      const res = await (await alerter(cfg, out, 'l2alert')).send({ level: 'info', title: 'l2alert test', message: 'Test alert: the alert channel works.', key: 'l2alert:test' });
      if (res.delivered) {
        out.print(`delivered: HTTP ${res.status} in ${res.latencyMs} ms (alert ${res.alert.id})${res.note ? `; ${res.note}` : ''}`);
        return EXIT.OK;
      }
      out.print(`not delivered: ${res.reason}; ${res.buffered ? 'kept in the buffer for the next run' : 'not buffered'}`);
      return EXIT.FAILED;
    }),
  );

  subcommand(program, 'buffer-status', 'show buffered (undelivered) alerts: count, ages, size, dropped, last error')
    .addOption(jsonOption())
    .action(action(spec, bufferStatusCommand));

  subcommand(program, 'flush', 'deliver buffered alerts now (oldest first, digests per key, paced)')
    .addOption(jsonOption())
    .action(
      action(spec, async ({ cfg, out }, opts: { json?: boolean }) => {
        if (!cfg.ALERT_WEBHOOK_URL) throw new UsageError('ALERT_WEBHOOK_URL is not set: there is nowhere to flush to; set it in the env file');
        const res = await (await alerter(cfg, out, 'l2alert')).flush();
        if (opts.json) out.json(res);
        else out.print(`delivered ${res.delivered.length} alert(s) in ${res.messages} message(s); ${res.deadLettered ? `${res.deadLettered} moved to the dead letters; ` : ''}${res.remaining} left in the buffer${res.busy ? ' (another process is flushing)' : ''}${res.error ? `; ${res.error}` : ''}`);
        return res.deadLettered > 0 || (res.remaining > 0 && res.error && !res.error.startsWith('paced')) ? EXIT.FAILED : EXIT.OK;
      }),
    );

  subcommand(program, 'send', 'raise an alert: an ALERT log line, and the webhook when configured')
    .addOption(new Option('--level <level>', 'alert level').choices([...ALERT_LEVELS]).makeOptionMandatory())
    .requiredOption('--title <title>', 'short title')
    .option('--source <source>', 'what raised it', 'l2alert')
    .option('--key <key>', 'digest key: alerts with one key are folded after an outage')
    .argument('<message>', 'the alert text')
    .action(
      action(spec, async ({ cfg, out }, message: string, opts: { level: AlertLevel; title: string; source: string; key?: string }) => {
        if (opts.title.trim() === '') throw new UsageError('--title must not be empty');
        const res = await (await alerter(cfg, out, opts.source)).send({ level: opts.level, title: opts.title, message, source: opts.source, key: opts.key });
        if (res.delivered) out.print(`delivered: HTTP ${res.status} (alert ${res.alert.id})${res.note ? `; ${res.note}` : ''}`);
        else out.print(`not delivered: ${res.reason}${res.buffered ? '; buffered' : ''}`);
        return res.delivered || !cfg.ALERT_WEBHOOK_URL ? EXIT.OK : EXIT.FAILED;
      }),
    );

  addConfigCommand(program, spec);
  return program;
}

export function main(argv: string[]): Promise<void> {
  return runProgram(buildProgram(), argv);
}
