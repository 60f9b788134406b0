/**
 * What the three programs share: commander set-up with our exit codes, config loading, the
 * Output, signal handling, and the translation of any error into one line and an exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import type { Config } from '../config/index.js';
import { createOutput, Output } from '../output/index.js';
import { EXIT, EXIT_CODES_HELP, L2Error } from '../errors.js';
import { LINGER_AFTER_RUN_MS, configCommand, installSignals, reportError, runBody, type Context, type ProgramSpec } from './light.js';
import { stateWritten } from '../state/files.js';

export { Command, Option };
// Moved to ./light.js (no commander there); exported here as before.
export { LINGER_AFTER_RUN_MS, redactUrl, reportError, type Context, type ProgramSpec } from './light.js';

export const VERSION = '0.1.0';

/** commander's error text as one line: its "(Did you mean ...?)" comes on a line of its own. */
const oneLine = (str: string) => str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ');

export function createProgram(spec: ProgramSpec): Command {
  const program = new Command(spec.name)
    .description(spec.description)
    .version(VERSION)
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n\nConfiguration: environment, then the env file (L2_ENV_FILE, default /app/.env). See '${spec.name} config'.`)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeErr: (str) => process.stderr.write(str),
      outputError: (str, write) => write(`${spec.name}: ${oneLine(str)}; see '${spec.name} --help'\n`),
    });
  return program;
}

/** Common subcommand settings: our exit codes in help, errors as one line. */
export function subcommand(program: Command, name: string, description: string): Command {
  const cmd = program.command(name).description(description).exitOverride().addHelpText('after', `\n${EXIT_CODES_HELP}`);
  cmd.configureOutput({
    writeErr: (str) => process.stderr.write(str),
    outputError: (str, write) => write(`${program.name()} ${name}: ${oneLine(str)}; see '${program.name()} ${name} --help'\n`),
  });
  return cmd;
}

export const jsonOption = (): Option => new Option('--json', 'print JSON instead of text');

/** Commands whose `--json` is NDJSON progress (status, error and summary lines; README "JSON progress"). */
const ndjsonCommands = new WeakSet<Command>();
export function withNdjson(cmd: Command): Command {
  ndjsonCommands.add(cmd);
  return cmd.addOption(new Option('--json', 'newline-delimited JSON on stdout: status lines while running, error lines, one summary line at the end'));
}

/**
 * Runs: commands after which the Prometheus textfile (L2_METRICS_DIR) is rewritten. Read-only
 * commands (status, list, config, buffer-status...) leave it alone.
 */
const RUNS: Record<string, ReadonlySet<string>> = {
  l2backup: new Set(['nightly', 'snapshot', 'emergency-pre-restore', 'restore', 'verify', 'prune', 'upload', 'cleanup-logs', 'drill']),
  l2alert: new Set(['test', 'flush', 'send']),
  l2health: new Set(['once', 'health-only', 'sse-only']),
};

/** Commands after which the status page ($BACKUP_ROOT/.l2/report/index.html) is rewritten. */
const PAGE_RUNS: Record<string, ReadonlySet<string>> = {
  l2backup: new Set(['nightly', 'snapshot', 'emergency-pre-restore']),
  l2alert: new Set(['flush']),
  l2health: new Set(['once', 'health-only', 'sse-only']),
};

/**
 * Wraps a subcommand body (./light.js runBody): loads and validates configuration (exit 2 on a
 * bad value), runs the body, and maps errors to exit codes. The body returns its exit code.
 */
export function action<A extends unknown[]>(spec: ProgramSpec, body: (ctx: Context, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    const out = await createOutput(spec.name);
    installSignals(out);
    // commander passes the Command last: it says which subcommand this is and its options.
    const cmd = args[args.length - 1] as Command | undefined;
    const ndjson = cmd instanceof Command && ndjsonCommands.has(cmd) && cmd.opts().json === true ? out.startNdjson(cmd.name()) : undefined;
    await runBody(spec, out, body, args, async (ran, code) => {
      // Bad usage (exit 2) that ran nothing changes nothing on the volume; one that recorded
      // something (a failed run, an alert) must show it on the page and in the metrics.
      if (ran && (code !== EXIT.USAGE || stateWritten()) && cmd instanceof Command) await afterRun(spec.name, cmd.name(), ran, out);
      ndjson?.summary(code);
    });
  };
}

/**
 * What a run ends with, whatever its outcome: the status page, then the metrics file. Neither
 * fails or holds up the run: a failure here is a warning.
 */
async function afterRun(program: string, command: string, cfg: Config, out: Output): Promise<void> {
  // Loaded only when wanted: start-up time of the programs matters (cron runs them often).
  if (PAGE_RUNS[program]?.has(command)) await (await import('../report/index.js')).refreshStatusPage(cfg, out);
  if (!cfg.L2_METRICS_DIR || !RUNS[program]?.has(command)) return;
  const { writeMetrics } = await import('../metrics/index.js');
  const warning = await writeMetrics(cfg, (m) => out.warn(m));
  if (warning) out.warn(warning);
}
/** Runs a program; commander usage errors become exit 2, help and version exit 0. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exitCode = ok ? EXIT.OK : EXIT.USAGE;
      // `--help | head -1`: the help's reader went away (EPIPE, reported after the write); not an error.
      if (ok) process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EPIPE') throw e;
      });
      return;
    }
    process.exitCode = reportError(new Output(program.name()), err);
  } finally {
    // unref: a process with nothing left ends at once, as before; only a stuck handle waits this out.
    setTimeout(() => process.exit(), LINGER_AFTER_RUN_MS).unref();
  }
}

/** `<tool> config`: the effective configuration with sources, secrets masked. */
export function addConfigCommand(program: Command, spec: ProgramSpec): void {
  subcommand(program, 'config', 'print the effective configuration, each value with its source (secrets masked)')
    .addOption(jsonOption())
    .action(action(spec, configCommand));
}

export function parseNumberOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new L2Error(`${name} must be a number from ${min} to ${max} (got "${value.slice(0, 40)}")`, EXIT.USAGE);
    return n;
  };
}
