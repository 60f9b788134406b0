/**
 * What the three programs share: commander set-up with our exit codes, config loading, the
 * Output, signal handling, and the translation of any error into one line and an exit code.
 */
import { setMaxListeners } from 'node:events';
import { Command, CommanderError, Option } from 'commander';
import { loadConfig, describeConfig, secretValues, type Config, type Group } from '../config/index.js';
import { createOutput, Output } from '../output/index.js';
import { maskUrlCredentials } from '../output/mask.js';

export { Command, Option };
import { EXIT, EXIT_CODES_HELP, L2Error, UNWRITABLE_CODES, errnoCode, errorMessage } from '../errors.js';
import { becomeUser, handBack, jobUser } from '../state/owner.js';
import { setStateRoot } from '../state/files.js';
import { join } from 'node:path';

export const VERSION = '0.1.0';

export interface Context {
  cfg: Config;
  out: Output;
  /** Aborted on SIGTERM/SIGINT: long jobs stop cleanly and release their locks. */
  signal: AbortSignal;
}

export interface ProgramSpec {
  name: string;
  description: string;
  groups: Group[];
}

const controller = new AbortController();
// Every concurrent S3 request listens on this one signal.
setMaxListeners(1000, controller.signal);
let signalsInstalled = false;

function installSignals(out: Output): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  // `l2backup list | head -3`: a reader that goes away is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') {
        // --json progress whose reader went away: a backup or restore is not stopped (and never
        // reported as exit 0 half done) because its progress lines have nobody to read them.
        if (stream === process.stdout && out.stdoutGone()) {
          out.warn('stdout was closed by its reader: the rest of the --json lines are dropped; the run goes on');
          return;
        }
        process.exit(process.exitCode ?? 0);
      }
      throw err;
    });
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      // A forced exit still ends `--json` output with its summary line (README "JSON progress").
      const forced = () => {
        out.endNdjson(EXIT.FAILED);
        process.exit(EXIT.FAILED);
      };
      if (controller.signal.aborted) forced();
      out.warn(`received ${sig}: stopping cleanly`);
      controller.abort(new L2Error(`interrupted by ${sig}`));
      // A job that does not wind down in time is ended; the exit hook still frees its locks.
      setTimeout(forced, 8000).unref();
    });
  }
}

export function createProgram(spec: ProgramSpec): Command {
  const program = new Command(spec.name)
    .description(spec.description)
    .version(VERSION)
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n\nConfiguration: environment, then the env file (L2_ENV_FILE, default /app/.env). See '${spec.name} config'.`)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeErr: (str) => process.stderr.write(str),
      outputError: (str, write) => write(`${spec.name}: ${str.replace(/^error: /, '').trim()}; see '${spec.name} --help'\n`),
    });
  return program;
}

/** Common subcommand settings: our exit codes in help, errors as one line. */
export function subcommand(program: Command, name: string, description: string): Command {
  const cmd = program.command(name).description(description).exitOverride().addHelpText('after', `\n${EXIT_CODES_HELP}`);
  cmd.configureOutput({
    writeErr: (str) => process.stderr.write(str),
    outputError: (str, write) => write(`${program.name()} ${name}: ${str.replace(/^error: /, '').trim()}; see '${program.name()} ${name} --help'\n`),
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

/**
 * Wraps a subcommand body: loads and validates configuration (exit 2 on a bad value), runs the
 * body, and maps errors to exit codes. The body returns its exit code.
 */
export function action<A extends unknown[]>(spec: ProgramSpec, body: (ctx: Context, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    const out = await createOutput(spec.name);
    installSignals(out);
    // commander passes the Command last: it says which subcommand this is and its options.
    const cmd = args[args.length - 1] as Command | undefined;
    const ndjson = cmd instanceof Command && ndjsonCommands.has(cmd) && cmd.opts().json === true ? out.startNdjson(cmd.name()) : undefined;
    let code: number;
    let cfg: Config | undefined;
    try {
      cfg = loadConfig(spec.groups);
      out.addSecrets(secretValues(cfg));
      setStateRoot(cfg.BACKUP_ROOT);
      dropRoot(cfg, out);
      code = (await body({ cfg, out, signal: controller.signal }, ...args)) ?? EXIT.OK;
    } catch (err) {
      code = reportError(out, err);
    }
    if (cfg && cmd instanceof Command && RUNS[spec.name]?.has(cmd.name())) await afterRun(cfg, out);
    ndjson?.summary(code);
    process.exitCode = code;
  };
}

/** What every run ends with, whatever its outcome: the metrics file. A failure here is a warning. */
async function afterRun(cfg: Config, out: Output): Promise<void> {
  if (!cfg.L2_METRICS_DIR) return;
  // Loaded only when wanted: start-up time of the programs matters (cron runs them often).
  const { writeMetrics } = await import('../metrics/index.js');
  const warning = await writeMetrics(cfg, (m) => out.warn(m));
  if (warning) out.warn(warning);
}

/**
 * Run as root: become the job user before anything touches the volume (src/state/owner.ts),
 * so a command run by hand never leaves root-owned state that breaks the next cron run.
 */
function dropRoot(cfg: Config, out: Output): void {
  if (process.getuid?.() !== 0) return;
  const user = jobUser(cfg.BACKUP_ROOT);
  if (!user || user.uid === 0) return;
  const handed = handBack(join(cfg.BACKUP_ROOT, '.l2'), user);
  if (handed > 0) out.warn(`${handed} state file(s) under ${cfg.BACKUP_ROOT}/.l2 belonged to root; handed back to ${user.name ?? `uid ${user.uid}`}`);
  try {
    becomeUser(user);
  } catch (err) {
    throw new L2Error(`running as root, could not become the job user ${user.name ?? `uid ${user.uid}`} (${user.why}): ${errorMessage(err)}; run the command as that user`, EXIT.USAGE);
  }
}

export function reportError(out: Output, err: unknown): number {
  if (err instanceof L2Error) {
    out.error(err.message);
    return err.exitCode;
  }
  // A full or read-only volume met outside the state module: still one line, never "internal".
  const code = errnoCode(err);
  if (code && code in UNWRITABLE_CODES) {
    out.error(`the volume ${UNWRITABLE_CODES[code]} (${code}): ${errorMessage(err)}; free space or remount it read-write`);
    return EXIT.FAILED;
  }
  // A bug, not a user mistake: say so plainly, keep the stack for the report.
  out.error(`internal error: ${errorMessage(err)} (please report this with the output of --version)`);
  if (process.env.L2_DEBUG) process.stderr.write(String((err as Error)?.stack) + '\n');
  return EXIT.FAILED;
}

/** Runs a program; commander usage errors become exit 2, help and version exit 0. */
/**
 * How long a finished run may linger. The run's work, records and lock are done when the
 * command returns; what keeps a process alive after that is a handle nobody waits for (seen: an
 * S3 socket whose server sent headers and then never the body). A cron job that never exits
 * piles up, so the process ends with its exit code once this has passed.
 */
export const LINGER_AFTER_RUN_MS = 10_000;

export async function runProgram(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exitCode = ok ? EXIT.OK : EXIT.USAGE;
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
    .action(
      action(spec, async ({ cfg, out }, opts: { json?: boolean }) => {
        const rows = describeConfig(cfg);
        if (opts.json) {
          out.json({
            envFile: cfg.envFile,
            settings: Object.fromEntries(rows.map((r) => [r.name, { value: r.value, source: r.source, secret: r.secret }])),
            ...(cfg.targets.length ? { targets: cfg.targets.map((t) => ({ ...t, url: maskUrlCredentials(t.url), headers: Object.fromEntries(Object.keys(t.headers).map((k) => [k, '****'])) })) } : {}),
            warnings: cfg.warnings,
          });
          return EXIT.OK;
        }
        out.print(`env file: ${cfg.envFile.path} (${cfg.envFile.loaded ? 'loaded' : 'not found, defaults and environment only'})`);
        out.table(['VARIABLE', 'VALUE', 'SOURCE'], rows.map((r) => [r.name, r.value, r.source]));
        if (cfg.targets.length) {
          out.print('');
          out.table(['TARGET', 'KIND', 'URL', 'TIMEOUT'], cfg.targets.map((t) => [t.name, t.kind, redactUrl(t.url), `${t.timeoutMs} ms`]));
        }
        for (const w of cfg.warnings) out.warn(w);
        return EXIT.OK;
      }),
    );
}

/** URLs may carry tokens in user info or query: keep scheme, host and path only. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?****' : ''}`;
  } catch {
    return '****';
  }
}

export function parseNumberOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new L2Error(`${name} must be a number from ${min} to ${max} (got "${value.slice(0, 40)}")`, EXIT.USAGE);
    return n;
  };
}
