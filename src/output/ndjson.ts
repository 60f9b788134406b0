/**
 * `--json` progress for long commands (nightly, snapshot, restore, verify): newline-delimited
 * JSON on stdout, one object per line, modelled on restic's `--json`:
 *   {"message_type":"status",...}   during the run, at most once a second, and at once on a phase change
 *   {"message_type":"error",...}    for every warning or error the run reports
 *   {"message_type":"summary",...}  exactly once, last, whatever the outcome (with the exit code)
 * The schema is in the README ("JSON progress"). Human lines still go to stderr.
 */

/** What a job reports as it goes; the command's domain code calls this through Output.status. */
export interface StatusEvent {
  /** what the run is doing now: 'snapshot', 'upload', 'restore', 'verify' */
  phase: string;
  snapshot_id?: string;
  files_done: number;
  bytes_done?: number;
  total_files?: number;
  total_bytes?: number;
}

export type ErrorLevel = 'warning' | 'error' | 'alert';

export class NdjsonWriter {
  private readonly started = Date.now();
  private lastPhase: string | undefined;
  private lastAt = 0;
  private fields: Record<string, unknown> = {};
  private done = false;
  private readerGone = false;

  constructor(
    private readonly stdout: { write(text: string): unknown; destroyed?: boolean; writableEnded?: boolean },
    readonly command: string,
    private readonly scrub: (text: string) => string,
    private readonly intervalMs = 1000,
  ) {}

  private write(obj: Record<string, unknown>): void {
    // A reader that went away (`| head -1`): the lines are dropped, the run goes on.
    if (this.readerGone || this.stdout.destroyed || this.stdout.writableEnded) return;
    // JSON.stringify escapes newlines and control characters: one object is always one line.
    // Secrets are scrubbed from the values before, not from the text after: a replacement in
    // the serialised text could cut an escape sequence and break the JSON.
    this.stdout.write(JSON.stringify(scrubDeep(obj, this.scrub)) + '\n');
  }

  private elapsed(): number {
    return Math.round((Date.now() - this.started) / 100) / 10;
  }

  /** stdout's reader went away (EPIPE): nothing more is written, and nothing fails for it. */
  dropOutput(): void {
    this.readerGone = true;
  }

  /** A status line: always on a phase change, else at most once per interval. */
  status(e: StatusEvent): void {
    if (this.done) return;
    const now = Date.now();
    if (e.phase === this.lastPhase && now - this.lastAt < this.intervalMs) return;
    this.lastPhase = e.phase;
    this.lastAt = now;
    const secs = (now - this.started) / 1000;
    const line: Record<string, unknown> = { message_type: 'status', phase: e.phase, seconds_elapsed: this.elapsed() };
    if (e.snapshot_id !== undefined) line.snapshot_id = e.snapshot_id;
    line.files_done = e.files_done;
    if (e.total_files !== undefined) line.total_files = e.total_files;
    if (e.bytes_done !== undefined) {
      line.bytes_done = e.bytes_done;
      line.bytes_per_second = secs > 0 ? Math.round(e.bytes_done / secs) : 0;
    }
    if (e.total_bytes !== undefined) line.total_bytes = e.total_bytes;
    const percent = e.total_bytes ? (e.bytes_done ?? 0) / e.total_bytes : e.total_files ? e.files_done / e.total_files : e.total_files === 0 || e.total_bytes === 0 ? 1 : undefined;
    if (percent !== undefined) line.percent_done = Math.min(1, Math.round(percent * 10_000) / 10_000);
    this.write(line);
  }

  error(level: ErrorLevel, message: string): void {
    if (this.done) return;
    this.write({ message_type: 'error', level, message });
  }

  /** Fields for the final summary; later calls add to (and override) earlier ones. */
  addSummary(fields: Record<string, unknown>): void {
    Object.assign(this.fields, fields);
  }

  /** The last line of the run; nothing is written after it. */
  summary(exitCode: number): void {
    if (this.done) return;
    this.done = true;
    this.write({ message_type: 'summary', command: this.command, exit_code: exitCode, outcome: OUTCOMES[exitCode] ?? 'failed', seconds_elapsed: this.elapsed(), ...this.fields });
  }
}

const OUTCOMES: Record<number, string> = { 0: 'ok', 1: 'failed', 2: 'usage', 3: 'partial', 75: 'locked' };

function scrubDeep(v: unknown, scrub: (t: string) => string): unknown {
  if (typeof v === 'string') return scrub(v);
  if (Array.isArray(v)) return v.map((x) => scrubDeep(x, scrub));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrubDeep(x, scrub)]));
  return v;
}
