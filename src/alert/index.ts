/**
 * Alerter: how every program raises alerts (l2alert, and l2backup/l2health in-process).
 * An alert is always printed as an ALERT log line. With a webhook configured it is first made
 * durable in the buffer, then the buffer is flushed oldest first; an alert leaves the buffer
 * only after a 2xx, so a crash can duplicate (same id) but never lose one. If the buffer cannot
 * be written (a full volume) the alert is still sent directly.
 */
import { hostname } from 'node:os';
import type { Config } from '../config/index.js';
import type { Output } from '../output/index.js';
import { statePaths } from '../state/paths.js';
import { acquireLock } from '../state/lock.js';
import { errorMessage, errnoCode, LockedError } from '../errors.js';
import { AlertBuffer } from './buffer.js';
import { buildMessage, groupByKey } from './message.js';
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
  buffered: boolean;
  status?: number;
  latencyMs?: number;
}

export interface FlushResult {
  delivered: string[];
  messages: number;
  remaining: number;
  error?: string;
  /** Another process is flushing right now. */
  busy?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Alerter {
  readonly buffer: AlertBuffer;
  private deadline: number | undefined;
  private readonly flushLockPath: string;

  constructor(
    private readonly cfg: Config,
    private readonly out: Output,
    private readonly defaultSource: string,
    opts: { deadline?: number } = {},
  ) {
    // A caller with its own budget (l2health's run budget) sets the delivery deadline outright.
    this.deadline = opts.deadline;
    const paths = statePaths(cfg.BACKUP_ROOT);
    this.buffer = new AlertBuffer(cfg.ALERT_BUFFER_FILE, paths.alertDelivery, cfg.ALERT_BUFFER_MAX, (m) => out.warn(m));
    this.flushLockPath = paths.lock('alert-flush');
  }

  /** Sets the delivery deadline (a caller with its own budget, such as l2health's run budget). */
  setDeadline(at: number): void {
    this.deadline = at;
  }

  /** Loads the webhook client ahead of the first delivery, so its import does not eat into the delivery's time. */
  async preload(): Promise<void> {
    const { loadClient } = await import('./webhook.js');
    await loadClient();
  }

  get configured(): boolean {
    return Boolean(this.cfg.ALERT_WEBHOOK_URL);
  }

  /** The process-wide delivery budget starts with the first delivery. */
  private budgetDeadline(): number {
    this.deadline ??= Date.now() + this.cfg.ALERT_BUDGET_MS;
    return this.deadline;
  }

  async make(input: AlertInput): Promise<Alert> {
    const { randomUUID } = await import('node:crypto');
    const source = input.source ?? this.defaultSource;
    return {
      id: input.id ?? randomUUID(),
      level: input.level,
      title: this.out.scrub(input.title),
      message: this.out.scrub(input.message),
      source,
      key: input.key ?? `${source}:${input.title}`,
      host: hostname(),
      time: new Date().toISOString(),
    };
  }

  /** Alerts that could not be buffered (a full volume): sent directly by deliver(). */
  private unbuffered: Alert[] = [];
  private bufferError: string | undefined;

  /**
   * Prints each alert as an ALERT line and makes it durable in the buffer, without sending.
   * Callers that must record state first (l2health) enqueue, write their state, then deliver.
   */
  async enqueue(inputs: AlertInput[]): Promise<Alert[]> {
    const alerts: Alert[] = [];
    for (const input of inputs) {
      const alert = await this.make(input);
      alerts.push(alert);
      this.out.alert(alert.level, `${alert.title}: ${alert.message}`);
      if (!this.configured) continue;
      try {
        await this.buffer.append(alert);
      } catch (err) {
        this.bufferError = errnoCode(err) === 'ENOSPC' ? 'the backups volume is full' : errorMessage(err);
        this.out.warn(`alert could not be buffered (${this.bufferError}); sending it directly`);
        this.unbuffered.push(alert);
      }
    }
    return alerts;
  }

  /** Flushes the buffer, then sends directly what could not be buffered. */
  async deliver(): Promise<FlushResult> {
    const result = await this.flush();
    for (const alert of this.unbuffered.splice(0)) {
      const res = await this.post([alert]);
      if (res.ok) result.delivered.push(alert.id);
      else result.error = `${res.error}; and it could not be buffered: ${this.bufferError}`;
    }
    return result;
  }

  async send(input: AlertInput): Promise<SendResult> {
    const [alert] = await this.enqueue([input]);
    if (!this.configured) return { alert: alert!, delivered: false, buffered: false, reason: 'ALERT_WEBHOOK_URL is not set (log line only)' };
    const buffered = !this.unbuffered.includes(alert!);
    const res = await this.deliver();
    if (res.delivered.includes(alert!.id)) return { alert: alert!, delivered: true, buffered: false, status: this.lastStatus, latencyMs: this.lastLatency };
    return { alert: alert!, delivered: false, buffered, reason: res.busy ? 'another process is delivering the buffer' : (res.error ?? 'left for the next run (pacing or budget)') };
  }

  private lastStatus: number | undefined;
  private lastLatency: number | undefined;

  private async post(alerts: Alert[], droppedNote?: string): Promise<DeliveryResult> {
    const msg = buildMessage(alerts, droppedNote);
    const { postWebhook } = await import('./webhook.js');
    const res = await postWebhook({ url: this.cfg.ALERT_WEBHOOK_URL!, secret: this.cfg.ALERT_WEBHOOK_SECRET, timeoutMs: this.cfg.ALERT_TIMEOUT_MS }, this.out.scrub(msg.body), alerts[0]!.id, this.budgetDeadline());
    if (res.ok) {
      this.lastStatus = res.status;
      this.lastLatency = res.latencyMs;
    }
    return res;
  }

  /**
   * Delivers the buffer oldest first, one digest per key, paced, within the budget.
   * Only one process flushes at a time; others wait for it within their budget.
   */
  async flush(): Promise<FlushResult> {
    const result: FlushResult = { delivered: [], messages: 0, remaining: 0 };
    if (!this.configured) {
      result.remaining = (await this.buffer.stats()).count;
      result.error = 'ALERT_WEBHOOK_URL is not set';
      return result;
    }
    const deadline = this.budgetDeadline();
    let lock;
    try {
      lock = await acquireLock(this.flushLockPath, `${this.defaultSource} flush`, { waitMs: Math.max(0, deadline - Date.now() - 200), onTakeover: (m) => this.out.warn(m) });
    } catch (err) {
      if (!(err instanceof LockedError)) throw err;
      result.busy = true;
      result.remaining = (await this.buffer.stats()).count;
      return result;
    }
    try {
      await this.flushLocked(result, deadline);
    } finally {
      await lock.release();
    }
    result.remaining = (await this.buffer.stats()).count;
    return result;
  }

  private async flushLocked(result: FlushResult, deadline: number): Promise<void> {
    const done = new Set<string>();
    for (;;) {
      const pending = (await this.buffer.load()).filter((a) => !done.has(a.id));
      if (pending.length === 0) return;
      for (const group of groupByKey(pending)) {
        const state = await this.buffer.readState();
        const wait = state.lastSentAt ? state.lastSentAt + this.cfg.ALERT_MIN_INTERVAL_MS - Date.now() : 0;
        if (wait > 0) {
          if (Date.now() + wait + 100 > deadline) {
            result.error ??= 'paced: the rest is left for the next run';
            return;
          }
          await sleep(wait);
        }
        if (deadline - Date.now() < 100) {
          result.error ??= 'alert budget used up: the rest is left for the next run';
          return;
        }
        const noted = state.droppedUnreported;
        const note = noted > 0 ? `(${state.droppedUnreported} older alert(s) were dropped: the buffer was over ALERT_BUFFER_MAX)` : undefined;
        const attemptAt = new Date().toISOString();
        const res = await this.post(group, note);
        if (!res.ok) {
          result.error = res.error;
          await this.buffer.updateState((s) => {
            s.lastAttemptAt = attemptAt;
            s.lastError = res.error;
            s.lastErrorAt = new Date().toISOString();
          });
          return; // keep order: nothing newer goes out before the older ones
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
