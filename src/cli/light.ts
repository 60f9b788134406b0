/**
 * The part of running a command that knows no commander: config loading, the Output, signals,
 * dropping root, errors as one line and an exit code (common.ts builds the commander programs
 * on it). `runLight` runs a read-only command given exactly as `<tool> <command> [flags]` without
 * loading commander at all: cron and people start `l2alert buffer-status`, `config` and the
 * status commands often, and commander's bundle is a sizeable share of their start-up
 * (bench/startup.mjs). Anything else on the command line (help, unknown or repeated options)
 * goes to the commander program, which gives the same output for these forms.
 */
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { loadConfig, describeConfig, secretValues, type Config, type Group } from '../config/index.js';
import { createOutput, Output } from '../output/index.js';
import { maskUrlCredentials } from '../output/mask.js';
import { FdSink, unwritableStream } from '../output/fd.js';
import { EXIT, L2Error, UNWRITABLE_CODES, descriptorHint, errnoCode, errorMessage } from '../errors.js';
import { becomeUser, handBack, jobUser } from '../state/owner.js';
import { setStateRoot } from '../state/files.js';

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

let controller: AbortController | undefined;
/**
 * The one controller SIGTERM/SIGINT abort, made when first asked for: a light command that never
 * reads its signal skips loading Node's AbortController (~1.3 M instructions of start-up).
 */
function abortController(): AbortController {
  if (!controller) {
    controller = new AbortController();
    // Every concurrent S3 request listens on this one signal.
    setMaxListeners(1000, controller.signal);
  }
  return controller;
}
let signalsInstalled = false;

export function installSignals(out: Output): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  // `l2backup list | head -3`: a reader that goes away is not an error. (An Output on FdSinks,
  // runLight's, says so itself: touching process.stdout here would build the stream it avoids.)
  for (const stream of out.onProcessStreams ? [process.stdout, process.stderr] : []) {
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
      // `> /dev/full`, a full disk: one line and exit 1, as the light commands' FdSink says it.
      if (stream === process.stdout) {
        try {
          out.error(unwritableStream(1, err).message);
        } catch {
          // stderr is gone too: the exit code says it.
        }
      }
      process.exit(EXIT.FAILED);
    });
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      // A forced exit still ends `--json` output with its summary line (README "JSON progress").
      const forced = () => {
        out.endNdjson(EXIT.FAILED);
        process.exit(EXIT.FAILED);
      };
      if (abortController().signal.aborted) forced();
      out.warn(`received ${sig}: stopping cleanly`);
      abortController().abort(new L2Error(`interrupted by ${sig}`));
      // A job that does not wind down in time is ended; the exit hook still frees its locks.
      setTimeout(forced, 8000).unref();
    });
  }
}

/**
 * Runs a command body: loads and validates configuration (exit 2 on a bad value), runs the body,
 * and maps errors to exit codes. `after` runs last whatever the outcome (NDJSON's summary), with
 * the configuration only when the body ran: not when the configuration did not load, nor when
 * root could not become the job user, since an end-of-run file (the metrics, the status page)
 * written then would be root's. Sets process.exitCode.
 */
export async function runBody<A extends unknown[]>(
  spec: ProgramSpec,
  out: Output,
  body: (ctx: Context, ...args: A) => Promise<number | void>,
  args: A,
  after?: (cfg: Config | undefined, code: number) => Promise<void>,
): Promise<void> {
  installSignals(out);
  let code: number;
  let ran: Config | undefined;
  try {
    const cfg = loadConfig(spec.groups);
    out.addSecrets(secretValues(cfg));
    setStateRoot(cfg.BACKUP_ROOT);
    dropRoot(cfg, out);
    ran = cfg;
    const ctx: Context = {
      cfg,
      out,
      get signal() {
        return abortController().signal;
      },
    };
    code = (await body(ctx, ...args)) ?? EXIT.OK;
  } catch (err) {
    code = reportError(out, err);
  }
  await after?.(ran, code);
  process.exitCode = code;
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
  // Out of descriptors: the machine's limit, not a bug.
  const hint = descriptorHint(err);
  if (hint) {
    out.error(`${errorMessage(err)}${hint}`);
    return EXIT.FAILED;
  }
  // A bug, not a user mistake: say so plainly, keep the stack for the report.
  out.error(`internal error: ${errorMessage(err)} (please report this with the output of --version)`);
  if (process.env.L2_DEBUG) process.stderr.write(String((err as Error)?.stack) + '\n');
  return EXIT.FAILED;
}

/**
 * How long a finished run may linger. The run's work, records and lock are done when the
 * command returns; what keeps a process alive after that is a handle nobody waits for (seen: an
 * S3 socket whose server sent headers and then never the body). A cron job that never exits
 * piles up, so the process ends with its exit code once this has passed.
 */
export const LINGER_AFTER_RUN_MS = 10_000;

/** A read-only command `runLight` may run: its body and the flags (all boolean) it takes. */
export interface LightCommand {
  flags: readonly string[];
  body: (ctx: Context, opts: Record<string, boolean>) => Promise<number | void>;
}

/**
 * Runs `argv` when it is exactly a known light command with some of its flags, each at most
 * once; returns false (having done nothing) for anything else. True once the command is done,
 * its output written (synchronously) and process.exitCode set: the bin (bin/<tool>.js) then ends
 * the process at once, where the commander programs linger up to LINGER_AFTER_RUN_MS. A light
 * command is read-only and starts nothing that outlives its body, and a timer would cost it
 * Node's timers (~1.5 M instructions of start-up, bench/startup.mjs).
 */
export async function runLight(spec: ProgramSpec, argv: string[], commands: Record<string, LightCommand>): Promise<boolean> {
  const [name, ...flags] = argv.slice(2);
  const command = name === undefined ? undefined : Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command || new Set(flags).size !== flags.length || !flags.every((f) => command.flags.includes(f))) return false;
  // `--json` -> { json: true }, `--du` -> { du: true }, as commander names them.
  const opts = Object.fromEntries(flags.map((f) => [f.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), true]));
  // Straight to fds 1 and 2 (../output/fd.ts); a reader that went away ends the run as
  // installSignals does for the streams.
  const gone = () => process.exit(process.exitCode ?? 0);
  await runBody(spec, await createOutput(spec.name, { stdout: new FdSink(1, gone), stderr: new FdSink(2, gone) }), command.body, [opts]);
  return true;
}

/** `<tool> config`: the effective configuration with sources, secrets masked. */
export async function configCommand({ cfg, out }: Context, opts: { json?: boolean }): Promise<number> {
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
