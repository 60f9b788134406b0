/**
 * The one place that decides output style.
 * On a TTY: colour (chalk) and spinners (ora). Otherwise (cron, docker compose logs): plain
 * timestamped lines with no escape codes. NO_COLOR is honoured. Log lines go to stderr,
 * results (tables, JSON) to stdout, so `--json` output is always clean JSON.
 * Every line passes through the secret scrubber, whatever produced it.
 */
import type { Writable } from 'node:stream';
import { maskUrlCredentials } from './mask.js';
import { NdjsonWriter, type StatusEvent } from './ndjson.js';
import type { FdSink } from './fd.js';

/** The colours we use; plain identity functions when colour is off, so chalk loads only on a TTY. */
export interface Paint {
  bold: (s: string) => string;
  red: (s: string) => string;
  green: (s: string) => string;
  yellow: (s: string) => string;
  cyan: (s: string) => string;
  magenta: (s: string) => string;
}

const plain = (s: string) => s;
const NO_PAINT: Paint = { bold: plain, red: plain, green: plain, yellow: plain, cyan: plain, magenta: plain };

/** Whether output goes to a terminal that wants colour (TTY, TERM not dumb, NO_COLOR unset). */
export function wantsColour(stream: { isTTY?: boolean } = process.stderr, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && env.TERM !== 'dumb' && !(env.NO_COLOR !== undefined && env.NO_COLOR !== '');
}

/** An Output with chalk loaded when (and only when) colour is wanted: cron runs stay light. */
export async function createOutput(prog: string, opts: OutputOptions = {}): Promise<Output> {
  let paint = NO_PAINT;
  if (wantsColour(opts.stderr ?? process.stderr, opts.env ?? process.env)) {
    const { Chalk } = await import('chalk');
    const chalk = new Chalk({ level: 2 });
    paint = { bold: chalk.bold, red: chalk.red, green: chalk.green, yellow: chalk.yellow, cyan: chalk.cyan, magenta: chalk.magenta };
  }
  return new Output(prog, opts, paint);
}

export type LogLevel = 'INFO' | 'WARN' | 'ERROR' | 'ALERT';

export interface Progress {
  update(text: string): void;
  succeed(text: string): void;
  fail(text: string): void;
}

/**
 * Where an Output writes: process.stdout/stderr (the default), a test's stream, or an FdSink
 * (./fd.ts: the light commands, which print a few lines and exit).
 */
export type OutputStream = (Writable | FdSink) & { isTTY?: boolean };

export interface OutputOptions {
  stdout?: OutputStream;
  stderr?: OutputStream;
  env?: NodeJS.ProcessEnv;
  /** Plain progress lines at most this often when not on a TTY. */
  progressIntervalMs?: number;
}

export class Output {
  readonly tty: boolean;
  private secrets: string[] = [];
  private readonly stdout: OutputStream;
  private readonly stderr: OutputStream;
  /** Writes to process.stdout and process.stderr (not to streams or sinks it was given). */
  readonly onProcessStreams: boolean;
  private readonly progressIntervalMs: number;
  /** Set under `--json` on a progress command: status, error and summary lines on stdout. */
  private ndjson: NdjsonWriter | undefined;

  constructor(
    readonly prog: string,
    opts: OutputOptions = {},
    readonly c: Paint = NO_PAINT,
  ) {
    const env = opts.env ?? process.env;
    this.onProcessStreams = opts.stdout === undefined && opts.stderr === undefined;
    this.stdout = opts.stdout ?? process.stdout;
    this.stderr = opts.stderr ?? process.stderr;
    this.tty = Boolean(this.stderr.isTTY) && env.TERM !== 'dumb';
    this.progressIntervalMs = opts.progressIntervalMs ?? 5000;
  }

  /** Values that must never be printed; replaced by **** wherever they appear. */
  addSecrets(values: string[]): void {
    this.secrets.push(...values.filter((v) => v.length >= 6));
    this.secrets.sort((a, b) => b.length - a.length);
  }

  /** Known secret values, then anything shaped like one (URL userinfo, token parameters). */
  scrub(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join('****');
    return maskUrlCredentials(out);
  }

  /** From now on stdout carries only NDJSON (src/output/ndjson.ts); results and tables go to stderr. */
  startNdjson(command: string): NdjsonWriter {
    this.ndjson = new NdjsonWriter(this.stdout, command, (t) => this.scrub(t));
    return this.ndjson;
  }

  /**
   * stdout's reader went away: with `--json` the progress lines are dropped from now on and true
   * is returned (the job goes on); without it false (the caller ends the program as before).
   */
  stdoutGone(): boolean {
    this.ndjson?.dropOutput();
    return this.ndjson !== undefined;
  }

  /** The `--json` summary line now (a forced exit); a no-op without --json or once written. */
  endNdjson(exitCode: number): void {
    this.ndjson?.summary(exitCode);
  }

  /** Progress of a long job, for `--json`; nothing otherwise (the human progress line is separate). */
  status(e: StatusEvent): void {
    this.ndjson?.status(e);
  }

  /** Fields for the `--json` summary line. */
  addSummary(fields: Record<string, unknown>): void {
    this.ndjson?.addSummary(fields);
  }

  private line(level: LogLevel, msg: string): void {
    if (level === 'WARN' || level === 'ERROR') this.ndjson?.error(level === 'WARN' ? 'warning' : 'error', this.scrub(msg));
    // One message, one line: a newline or other control character in an alert text or an
    // upstream error is shown escaped, so it cannot forge a log line of its own.
    // eslint-disable-next-line no-control-regex -- control characters are what this escapes
    const text = this.scrub(msg).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? ' ' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    if (this.tty) {
      const tag = {
        INFO: this.c.cyan('info '),
        WARN: this.c.yellow('warn '),
        ERROR: this.c.red(this.c.bold('error')),
        ALERT: this.c.magenta(this.c.bold('ALERT')),
      }[level];
      this.stderr.write(`${tag} ${text}\n`);
    } else {
      this.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${this.prog}: ${text}\n`);
    }
  }

  info(msg: string): void {
    this.line('INFO', msg);
  }
  warn(msg: string): void {
    this.line('WARN', msg);
  }
  error(msg: string): void {
    this.line('ERROR', msg);
  }
  /** An alert as a log line: always carries the word ALERT and the level (runbook: `logs cron | grep ALERT`). */
  alert(level: string, text: string): void {
    // --json: a warning or worse is an error line (level "alert"); an info alert is not an error.
    if (level !== 'info') this.ndjson?.error('alert', this.scrub(`[${level}] ${text}`));
    this.line('ALERT', `[${level}] ${text}`);
  }

  /** Result text on stdout (tables, summaries). */
  print(text = ''): void {
    (this.ndjson ? this.stderr : this.stdout).write(this.scrub(text) + '\n');
  }

  json(value: unknown): void {
    (this.ndjson ? this.stderr : this.stdout).write(this.scrub(JSON.stringify(value, null, 2)) + '\n');
  }

  /** A left-aligned text table; colour only on a TTY. */
  table(headers: string[], rows: string[][]): void {
    const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ''))));
    const fmt = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visibleLength(cell)))).join('  ').trimEnd();
    this.print(this.c.bold(fmt(headers)));
    for (const r of rows) this.print(fmt(r));
  }

  /** A spinner on a TTY; elsewhere a plain line at most every few seconds, then the summary. */
  async progress(text: string): Promise<Progress> {
    // A pseudo-terminal without a size (columns 0) sends ora's line counting into a spin.
    // An FdSink has no columns: ora only ever gets a terminal's stream.
    if (this.tty && ((this.stderr as { columns?: number }).columns ?? 0) > 0) {
      // The light bundles (CommonJS, scripts/bundle.mjs) require() it: their `default` is then
      // the module's namespace.
      const mod: { default: unknown } = await import('ora');
      const ora = (typeof mod.default === 'function' ? mod.default : (mod.default as { default: unknown }).default) as typeof import('ora').default;
      const spinner = ora({ text: this.scrub(text), stream: this.stderr as Writable, color: 'cyan', isEnabled: true, discardStdin: false }).start();
      return {
        update: (t) => {
          spinner.text = this.scrub(t);
        },
        succeed: (t) => spinner.succeed(this.scrub(t)),
        fail: (t) => spinner.fail(this.scrub(t)),
      };
    }
    let last = Date.now();
    this.info(text);
    return {
      update: (t) => {
        if (Date.now() - last >= this.progressIntervalMs) {
          last = Date.now();
          this.info(t);
        }
      },
      succeed: (t) => this.info(t),
      fail: (t) => this.error(t),
    };
  }
}

// Matches SGR colour sequences so table columns line up when chalk colours them.
const ANSI = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');

function visibleLength(s: string): number {
  return s.replace(ANSI, '').length;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function formatAge(fromIso: string | number | undefined, now = Date.now()): string {
  if (fromIso === undefined) return '-';
  const t = typeof fromIso === 'number' ? fromIso : Date.parse(fromIso);
  if (!Number.isFinite(t)) return '-';
  return formatDuration(Math.max(0, now - t));
}
