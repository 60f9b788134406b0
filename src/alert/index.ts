/**
 * Alerter: how every program raises alerts (l2alert, and l2backup/l2health in-process).
 * An alert is always printed as an ALERT log line. With a webhook configured it is first made
 * durable in the buffer, then the buffer is flushed oldest first; an alert leaves the buffer
 * only after a 2xx, so a crash can duplicate (same id) but never lose one.
 * - The buffer's mutex cannot be had within the budget (its holder is frozen or slow): the
 *   alert is spilled to a file of its own (collected by the next flush) and sent directly.
 * - Nothing can be written (a full or read-only volume, a planted symlink): the alert is sent
 *   directly at once, and the output says it was not kept.
 * Every wait (mutexes, the flush lock, pacing, HTTP) fits in ALERT_BUDGET_MS, which starts
 * with the first alert of the process.
 */
import { hostname } from 'node:os';
import type { Config } from '../config/index.js';
import type { Output } from '../output/index.js';
import { statePaths } from '../state/paths.js';
import { existsSync } from 'node:fs';
import { acquireLock } from '../state/lock.js';
import { L2Error, LockedError, UnwritableError, errorMessage } from '../errors.js';
import { AlertBuffer } from './buffer.js';
import { buildMessage, groupDigests, messageId } from './message.js';
import type { DeliveryResult } from './webhook.js';
import type { Alert, AlertLevel } from './types.js';

export type { Alert, AlertLevel } from './types.js';
export { ALERT_LEVELS } from './types.js';

export interface AlertInput {
  level: AlertLevel;
  title: string;
  message: string;
  source?: string;
  /** Digest key; defaults to source + title. */
  key?: string;
  /** A caller that may raise the same alert twice (a run killed before it recorded it) gives a stable id. */
  id?: string;
}

export interface SendResult {
  alert: Alert;
  delivered: boolean;
  /** Why it was not delivered (it is buffered, unless `buffered` is false). */
  reason?: string;
  /** Kept on the volume (buffered or spilled) for a later delivery. */
  buffered: boolean;
  /** Delivered, but something to say: e.g. it could not be kept on the volume. */
  note?: string;
  status?: number;
  latencyMs?: number;
}

export interface FlushResult {
  delivered: string[];
  messages: number;
  remaining: number;
  /** Alerts the webhook rejected for good, moved to the dead-letter file. */
  deadLettered: number;
  error?: string;
  /** Another process is flushing right now. */
  busy?: boolean;
}

/** How an alert of this process was kept. */
type Kept = { how: 'buffer' } | { how: 'spill'; path: string; why: string; settled?: boolean } | { how: 'none'; why: string; direct: DeliveryResult; settled?: boolean };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A title is one line: control characters become spaces. */
// eslint-disable-next-line no-control-regex -- control characters are what this removes
const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();

/** How far past a caller's run budget (l2health's) the forced first delivery attempt may go. */
export const FIRST_ATTEMPT_PAST_RUN_BUDGET_MS = 1000;

export class Alerter {
  readonly buffer: AlertBuffer;
  private deadline: number | undefined;
  private readonly flushLockPath: string;
  private readonly kept = new Map<string, Kept>();
  /** Set when the volume refused a write: no flush is tried (nothing could be removed). */
  private volumeProblem: string | undefined;

  constructor(
    private readonly cfg: Config,
    private readonly out: Output,
    private readonly defaultSource: string,
    opts: { deadline?: number } = {},
  ) {
    // A caller with its own budget (l2health's run budget) sets the delivery deadline outright.
    this.deadline = opts.deadline;
    this.callerBudget = opts.deadline !== undefined;
    const paths = statePaths(cfg.BACKUP_ROOT);
    this.buffer = new AlertBuffer(cfg.ALERT_BUFFER_FILE, paths.alertDelivery, cfg.ALERT_BUFFER_MAX, (m) => out.warn(m), () => this.waitShare());
    this.flushLockPath = paths.lock('alert-flush');
  }

  /** Sets the delivery deadline (a caller with its own budget, such as l2health's run budget). */
  setDeadline(at: number): void {
    this.deadline = at;
    this.callerBudget = true;
  }

  /**
   * Whether the deadline is a caller's run budget (l2health's). Past it, the forced first
   * attempt gets at most FIRST_ATTEMPT_PAST_RUN_BUDGET_MS, so the run's bound still holds
   * within that; past l2alert's own budget it gets ALERT_TIMEOUT_MS.
   */
  private callerBudget = false;

  /** Loads the webhook client ahead of the first delivery, so its import does not eat into the delivery's time. */
  async preload(): Promise<void> {
    const { loadClient } = await import('./webhook.js');
    await loadClient();
  }

  get configured(): boolean {
    return Boolean(this.cfg.ALERT_WEBHOOK_URL);
  }

  /** The process-wide delivery budget starts with the first alert or delivery. */
  private budgetDeadline(): number {
    this.deadline ??= Date.now() + this.cfg.ALERT_BUDGET_MS;
    return this.deadline;
  }

  /** A lock wait may use a quarter of what is left of the budget, so delivery still fits. */
  private waitShare(): number {
    return Math.max(0, Math.floor((this.budgetDeadline() - Date.now()) / 4));
  }

  async make(input: AlertInput): Promise<Alert> {
    const { randomUUID } = await import('node:crypto');
    const source = input.source ?? this.defaultSource;
    return {
      id: input.id ?? randomUUID(),
      level: input.level,
      title: this.out.scrub(oneLine(input.title)),
      message: this.out.scrub(input.message),
      source,
      key: input.key ?? `${source}:${input.title}`,
      host: hostname(),
      time: new Date().toISOString(),
    };
  }

  /**
   * Prints each alert as an ALERT line and makes it durable (buffer, else a spill file), without
   * sending; one that cannot be kept at all is sent at once. Callers that must record state
   * first (l2health) enqueue, write their state, then deliver.
   */
  async enqueue(inputs: AlertInput[]): Promise<Alert[]> {
    const alerts: Alert[] = [];
    for (const input of inputs) {
      const alert = await this.make(input);
      alerts.push(alert);
      this.out.alert(alert.level, `${alert.title}: ${alert.message}`);
      if (this.configured) await this.keep(alert);
    }
    return alerts;
  }

  private async keep(alert: Alert): Promise<void> {
    this.budgetDeadline();
    let why: string;
    try {
      if (this.volumeProblem) throw new L2Error(this.volumeProblem);
      await this.buffer.append(alert);
      this.kept.set(alert.id, { how: 'buffer' });
      return;
    } catch (err) {
      // Whatever went wrong (even an unexpected EACCES), the alert must still get out.
      why = errorMessage(err);
      if (err instanceof UnwritableError) this.volumeProblem = err.message;
    }
    if (!this.volumeProblem) {
      try {
        const path = await this.buffer.spill(alert);
        this.kept.set(alert.id, { how: 'spill', path, why });
        this.out.warn(`alert ${alert.id} could not go into the buffer (${why}); kept in ${path} for the next flush, and sending it directly`);
        return;
      } catch (err) {
        if (err instanceof UnwritableError) this.volumeProblem = err.message;
        why = `${why}; and ${errorMessage(err)}`;
      }
    }
    this.out.warn(`alert ${alert.id} cannot be kept on the volume (${why}); sending it directly`);
    const direct = await this.post([alert]);
    this.kept.set(alert.id, { how: 'none', why, direct });
    if (direct.ok) this.out.warn(`alert ${alert.id} delivered directly (HTTP ${direct.status}); it was not kept on the volume`);
    else this.out.error(`alert ${alert.id} could not be delivered (${direct.error}) nor kept on the volume: only its ALERT line above remains`);
  }

  /** Flushes the buffer, then sends directly this process's alerts that no flush took. */
  async deliver(): Promise<FlushResult> {
    let result: FlushResult;
    if (this.volumeProblem) {
      result = { delivered: [], messages: 0, deadLettered: 0, remaining: (await this.buffer.stats()).count, error: `the buffer was not flushed: ${this.volumeProblem}` };
    } else {
      result = await this.flush();
    }
    for (const [id, k] of this.kept) {
      if (k.how === 'buffer' || k.settled) continue;
      k.settled = true;
      if (k.how === 'none') {
        if (k.direct.ok) result.delivered.push(id);
        else result.error = `${k.direct.error}; and it could not be kept: ${k.why}`;
      } else if (!result.delivered.includes(id) && existsSync(k.path)) {
        const alert = await this.buffer.readSpill(k.path);
        if (!alert) continue; // collected into the buffer meanwhile
        const res = await this.post([alert]);
        if (res.ok) {
          result.delivered.push(id);
          await this.buffer.removeSpill(k.path);
        } else {
          result.error = `${res.error}; the alert stays in ${k.path} for the next flush`;
        }
      }
    }
    return result;
  }

  async send(input: AlertInput): Promise<SendResult> {
    const [alert] = await this.enqueue([input]);
    const a = alert!;
    if (!this.configured) return { alert: a, delivered: false, buffered: false, reason: 'ALERT_WEBHOOK_URL is not set (log line only)' };
    const res = await this.deliver();
    const k = this.kept.get(a.id);
    if (res.delivered.includes(a.id)) {
      const note = k?.how === 'none' ? `sent directly: it could not be kept on the volume (${k.why})` : k?.how === 'spill' ? `sent directly: the buffer could not be had (${k.why})` : undefined;
      return { alert: a, delivered: true, buffered: false, status: this.lastStatus, latencyMs: this.lastLatency, note };
    }
    const buffered = k?.how === 'buffer' || (k?.how === 'spill' && existsSync(k.path));
    return { alert: a, delivered: false, buffered, reason: sendOutcome(res) };
  }

  private lastStatus: number | undefined;
  private lastLatency: number | undefined;
  /**
   * Whether this process has attempted a delivery yet. The budget bounds retries and further
   * messages, never the first attempt: a process slowed down by a busy machine (its budget used
   * up by a slow start or a lock wait) still sends once, at most ALERT_TIMEOUT_MS past it.
   */
  private attempted = false;

  private async post(alerts: Alert[], droppedNote?: string): Promise<DeliveryResult> {
    const msg = buildMessage(alerts, droppedNote);
    const { postWebhook } = await import('./webhook.js');
    const res = await postWebhook({ url: this.cfg.ALERT_WEBHOOK_URL!, secret: this.cfg.ALERT_WEBHOOK_SECRET, timeoutMs: this.cfg.ALERT_TIMEOUT_MS }, this.out.scrub(msg.body), msg.id, this.budgetDeadline(), {
      firstAttempt: !this.attempted,
      firstAttemptMaxMs: this.callerBudget ? FIRST_ATTEMPT_PAST_RUN_BUDGET_MS : undefined,
    });
    if (res.attempts > 0) this.attempted = true;
    if (res.ok) {
      this.lastStatus = res.status;
      this.lastLatency = res.latencyMs;
    }
    return res;
  }

  /**
   * Delivers the buffer oldest first, digests per key and state, paced, within the budget.
   * Only one process flushes at a time; others wait for it within their share of the budget.
   * A buffer that cannot be had or written ends the flush with an error, never the program.
   */
  async flush(): Promise<FlushResult> {
    const result: FlushResult = { delivered: [], messages: 0, remaining: 0, deadLettered: 0 };
    if (!this.configured) {
      result.remaining = (await this.buffer.stats()).count;
      result.error = 'ALERT_WEBHOOK_URL is not set';
      return result;
    }
    const deadline = this.budgetDeadline();
    let lock;
    try {
      lock = await acquireLock(this.flushLockPath, `${this.defaultSource} flush`, { waitMs: this.waitShare(), onTakeover: (m) => this.out.warn(m) });
    } catch (err) {
      if (err instanceof LockedError) result.busy = true;
      else result.error = errorMessage(err);
      result.remaining = (await this.buffer.stats()).count;
      return result;
    }
    try {
      await this.flushLocked(result, deadline);
    } catch (err) {
      // Whatever broke the buffer (even an unexpected errno), this process's own alerts must
      // still go out directly (deliver() goes on), so this ends the flush, not the program.
      result.error = `the alert buffer could not be flushed: ${errorMessage(err)}`;
      this.out.warn(result.error);
    } finally {
      await lock.release();
    }
    const unreadable = this.buffer.unreadableSpills.size;
    if (unreadable > 0) result.error ??= `${unreadable} spilled alert(s) in ${this.buffer.spillDir} cannot be read and were left in place; fix their owner (they should belong to the user running l2ops)`;
    result.remaining = (await this.buffer.stats()).count;
    return result;
  }

  private async flushLocked(result: FlushResult, deadline: number): Promise<void> {
    const done = new Set<string>();
    for (;;) {
      const pending = (await this.buffer.load()).filter((a) => !done.has(a.id));
      if (pending.length === 0) return;
      for (const group of groupDigests(pending)) {
        const state = await this.buffer.readState();
        const wait = state.lastSentAt ? state.lastSentAt + this.cfg.ALERT_MIN_INTERVAL_MS - Date.now() : 0;
        if (wait > 0) {
          if (this.attempted && Date.now() + wait + 100 > deadline) {
            result.error ??= 'paced: the rest is left for the next run';
            return;
          }
          await sleep(wait);
        }
        if (this.attempted && deadline - Date.now() < 100) {
          result.error ??= 'alert budget used up: the rest is left for the next run';
          return;
        }
        const noted = state.droppedUnreported;
        const note = noted > 0 ? `(${state.droppedUnreported} older alert(s) were dropped: the buffer was over ALERT_BUFFER_MAX)` : undefined;
        const attemptAt = new Date().toISOString();
        const res = await this.post(group, note);
        if (!res.ok) {
          await this.buffer.updateState((s) => {
            s.lastAttemptAt = attemptAt;
            s.lastError = res.error;
            s.lastErrorAt = new Date().toISOString();
          });
          if (!res.permanent) {
            result.error = res.error;
            return; // keep order: nothing newer goes out before the older ones
          }
          // Rejected for good: this message can never go out; it must not hold back the rest.
          const id = messageId(group);
          await this.buffer.deadLetter(group.map((alert) => ({ alert, rejectedAt: new Date().toISOString(), status: res.status, error: res.error, messageId: id })));
          for (const a of group) done.add(a.id);
          result.deadLettered += group.length;
          result.error = `${res.error}; moved to the dead letters`;
          const what = group.length === 1 ? `alert "${group[0]!.title}" (${group[0]!.id})` : `${group.length} alerts "${group[0]!.title}" (message ${id})`;
          this.out.alert('error', `the webhook rejected ${what}: ${res.error}; moved to the dead letters ${this.buffer.deadLetterPath} (see 'l2alert buffer-status'); going on with the rest`);
          continue;
        }
        const ids = new Set(group.map((a) => a.id));
        await this.buffer.remove(ids);
        for (const id of ids) {
          done.add(id);
          result.delivered.push(id);
        }
        result.messages++;
        await this.buffer.updateState((s) => {
          s.lastAttemptAt = attemptAt;
          s.lastSuccessAt = new Date().toISOString();
          s.lastSentAt = Date.now();
          s.droppedUnreported = Math.max(0, s.droppedUnreported - noted);
        });
      }
    }
  }
}

/**
 * Why `send` did not deliver. A failed direct send is the true outcome and comes first; a busy
 * flush lock only explains an alert that is safely in the buffer.
 */
function sendOutcome(res: FlushResult): string {
  if (res.error && res.busy) return `${res.error} (another process is delivering the buffer)`;
  if (res.error) return res.error;
  if (res.busy) return 'another process is delivering the buffer';
  return 'left for the next run (pacing or budget)';
}
