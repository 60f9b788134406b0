/**
 * The alert buffer: undelivered alerts, one JSON line each, oldest first, on the backups volume.
 * Every change is made under a short mutex (`<buffer>.lock`): appends are one whole write,
 * removals re-read the file and replace it atomically, so no concurrent append is lost or torn.
 * Torn or corrupt lines are moved to `<buffer>.corrupt` and reported; the rest stays usable.
 * Past the cap the oldest alerts are dropped and counted in the delivery state: never silently.
 *
 * - Spill (`<buffer>.spill/<id>.json`): an alert whose process cannot have the mutex in time
 *   (its holder is frozen, or slow) is written to a file of its own, atomically and without the
 *   mutex; the next flush moves spilled alerts into the buffer.
 * - Dead letters (`<buffer>.dead`): messages the webhook rejects for good (a 4xx other than
 *   408/429) are moved here with the answer, so one bad message cannot block the queue.
 * Nothing here follows a symlink (see src/state/files.ts).
 */
import { promises as fs, constants as C, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { appendLines, openState, readJsonStateSync, readState, readStateSync, writeFileAtomic, writeJsonAtomic, isObject, type Reporter } from '../state/files.js';
import { withMutex } from '../state/lock.js';
import { errnoCode, errorMessage } from '../errors.js';
import { isAlert, type Alert } from './types.js';

export interface DeliveryState {
  lastAttemptAt?: string;
  lastSuccessAt?: string;
  lastError?: string;
  lastErrorAt?: string;
  /** When the last webhook message was sent (pacing across processes). */
  lastSentAt?: number;
  droppedTotal: number;
  /** Dropped since the last delivered message said so. */
  droppedUnreported: number;
}

export interface BufferStats {
  count: number;
  oldest?: string;
  newest?: string;
  sizeBytes: number;
  /** Alerts spilled to files of their own, waiting for the next flush to collect them. */
  spilled: number;
  /** Alerts the webhook rejected for good, kept in the dead-letter file. */
  deadLetters: number;
}

export interface DeadLetter {
  alert: Alert;
  rejectedAt: string;
  status?: number;
  error: string;
  messageId: string;
}

export class AlertBuffer {
  readonly mutexPath: string;
  readonly corruptPath: string;
  readonly spillDir: string;
  readonly deadLetterPath: string;

  constructor(
    readonly file: string,
    readonly deliveryStatePath: string,
    private readonly max: number,
    private readonly report: Reporter,
    /** How long a buffer operation may wait for the mutex (the Alerter ties it to its budget). */
    private readonly mutexWaitMs: () => number = () => 10_000,
  ) {
    this.mutexPath = `${file}.lock`;
    this.corruptPath = `${file}.corrupt`;
    this.spillDir = `${file}.spill`;
    this.deadLetterPath = `${file}.dead`;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withMutex(this.mutexPath, 'alert buffer', fn, this.mutexWaitMs(), this.report);
  }

  private async readText(path = this.file): Promise<string> {
    try {
      return await readState(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return '';
      throw err;
    }
  }

  /** Splits the file into alerts and bad lines. */
  private parse(text: string): { alerts: Alert[]; bad: string[] } {
    const alerts: Alert[] = [];
    const bad: string[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        v = undefined;
      }
      if (isAlert(v)) alerts.push(v);
      else bad.push(line);
    }
    return { alerts, bad };
  }

  private async rewrite(alerts: Alert[]): Promise<void> {
    await writeFileAtomic(this.file, alerts.map((a) => JSON.stringify(a) + '\n').join(''));
  }

  /** Appends under the mutex; the caller handles failure (spill or send directly). */
  async append(alert: Alert): Promise<void> {
    await this.locked(() => this.appendUnlocked([alert]));
  }

  private async appendUnlocked(add: Alert[]): Promise<void> {
    if (add.length === 0) return;
    const size = await fs.stat(this.file).then((s) => s.size, () => 0);
    // A crash mid-write (before appends were whole) may have left a line without its newline.
    let prefix = '';
    if (size > 0) {
      const fh = await openState(this.file, C.O_RDONLY);
      const { buffer } = await fh.read(Buffer.alloc(1), 0, 1, size - 1);
      await fh.close();
      if (buffer[0] !== 0x0a) prefix = '\n';
    }
    await appendLines(this.file, add.map((a, i) => (i === 0 ? prefix : '') + JSON.stringify(a)));
    const text = await this.readText();
    if (countLines(text) > this.max) {
      const { alerts, bad } = this.parse(text);
      await this.moveCorrupt(bad);
      const drop = Math.max(0, alerts.length - this.max);
      if (drop > 0) {
        await this.rewrite(alerts.slice(drop));
        await this.updateStateUnlocked((s) => {
          s.droppedTotal += drop;
          s.droppedUnreported += drop;
        });
        this.report(`alert buffer is over ALERT_BUFFER_MAX=${this.max}: dropped the ${drop} oldest alert(s); see 'l2alert buffer-status'`);
      }
    }
  }

  /** Writes an alert to a file of its own, without the mutex (atomic, so never torn). */
  async spill(alert: Alert): Promise<string> {
    const path = join(this.spillDir, `${alert.time.replace(/[:.]/g, '')}-${alert.id}.json`);
    await writeFileAtomic(path, JSON.stringify(alert) + '\n');
    return path;
  }

  private async spillFiles(): Promise<string[]> {
    try {
      return spillNames(await fs.readdir(this.spillDir));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
      throw err;
    }
  }

  /**
   * Moves spilled alerts into the buffer (caller holds the mutex). Only a file that was read is
   * ever removed: one that cannot be read (root-owned 0600 from an older root run) stays where
   * it is, is reported and counted, and is tried again by the next flush.
   */
  private async collectSpilled(present: Set<string>): Promise<void> {
    const names = await this.spillFiles();
    if (names.length === 0) return;
    const add: Alert[] = [];
    const read: string[] = [];
    for (const name of names) {
      const path = join(this.spillDir, name);
      let raw: string;
      try {
        raw = await readState(path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue; // collected by another flush meanwhile
        this.unreadableSpills.add(name);
        this.report(`spilled alert ${path} cannot be read (${errorMessage(err)}); it is left in place, not delivered`);
        continue;
      }
      read.push(name);
      let v: unknown;
      try {
        v = JSON.parse(raw);
      } catch {
        v = undefined;
      }
      if (!isAlert(v)) await this.moveCorrupt([raw.trim() || `(empty spill file ${name})`]);
      else if (!present.has(v.id)) add.push(v);
    }
    add.sort((a, b) => a.time.localeCompare(b.time));
    await this.appendUnlocked(add);
    for (const name of read) await fs.rm(join(this.spillDir, name), { force: true });
  }

  /** Spill files this process found but could not read (left in place). */
  readonly unreadableSpills = new Set<string>();

  /** The alert in a spill file; undefined when it is gone (collected) or unreadable. */
  async readSpill(path: string): Promise<Alert | undefined> {
    try {
      const v: unknown = JSON.parse(await readState(path));
      return isAlert(v) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Removes one spill file (its alert was delivered directly); false when it is gone already. */
  async removeSpill(path: string): Promise<boolean> {
    try {
      await fs.unlink(path);
      return true;
    } catch {
      return false;
    }
  }

  /** All buffered alerts, oldest first, spilled ones collected; bad lines are moved aside on the way. */
  async load(): Promise<Alert[]> {
    return this.locked(async () => {
      let { alerts, bad } = this.parse(await this.readText());
      if (bad.length > 0) {
        await this.moveCorrupt(bad);
        await this.rewrite(alerts);
      }
      if ((await this.spillFiles()).length > 0) {
        await this.collectSpilled(new Set(alerts.map((a) => a.id)));
        ({ alerts, bad } = this.parse(await this.readText()));
      }
      return alerts;
    });
  }

  /** Removes delivered alerts; alerts appended meanwhile stay. */
  async remove(ids: Set<string>): Promise<void> {
    if (ids.size === 0) return;
    await this.locked(async () => {
      const { alerts, bad } = this.parse(await this.readText());
      await this.moveCorrupt(bad);
      await this.rewrite(alerts.filter((a) => !ids.has(a.id)));
    });
  }

  /** Moves alerts the webhook rejected for good to the dead-letter file, out of the buffer. */
  async deadLetter(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.locked(async () => {
      await appendLines(this.deadLetterPath, letters.map((l) => JSON.stringify(l)));
      const ids = new Set(letters.map((l) => l.alert.id));
      const { alerts, bad } = this.parse(await this.readText());
      await this.moveCorrupt(bad);
      await this.rewrite(alerts.filter((a) => !ids.has(a.id)));
    });
  }

  private async moveCorrupt(bad: string[]): Promise<void> {
    if (bad.length === 0) return;
    await appendLines(this.corruptPath, bad);
    this.report(`alert buffer ${this.file}: ${bad.length} corrupt line(s) moved to ${this.corruptPath}; the other alerts are kept`);
  }

  /**
   * Counts what waits for delivery; an unreadable buffer is reported, and spilled alerts still
   * count. Stats and state are read synchronously (small files, no lock taken): `l2alert
   * buffer-status` then never loads node:fs/promises, a sizeable share of its start-up.
   */
  async stats(): Promise<BufferStats> {
    let text = '';
    try {
      text = readTextSync(this.file);
    } catch (err) {
      this.report(`alert buffer ${this.file} is unreadable (${errorMessage(err)})`);
    }
    const { alerts } = this.parse(text);
    let spilled = 0;
    try {
      spilled = spillNames(readdirSync(this.spillDir)).length;
    } catch {
      // No spill folder (or an unreadable one): nothing spilled that a flush could collect.
    }
    let deadLetters = 0;
    try {
      deadLetters = countLines(readTextSync(this.deadLetterPath));
    } catch {
      // An unreadable dead-letter file counts none, as before.
    }
    return { count: alerts.length + spilled, oldest: alerts[0]?.time, newest: alerts[alerts.length - 1]?.time, sizeBytes: Buffer.byteLength(text), spilled, deadLetters };
  }

  async readState(): Promise<DeliveryState> {
    const s = readJsonStateSync<DeliveryState>(this.deliveryStatePath, this.report, isObject);
    return { droppedTotal: 0, droppedUnreported: 0, ...s };
  }

  private async updateStateUnlocked(fn: (s: DeliveryState) => void): Promise<DeliveryState> {
    const s = await this.readState();
    fn(s);
    await writeJsonAtomic(this.deliveryStatePath, s);
    return s;
  }

  updateState(fn: (s: DeliveryState) => void): Promise<DeliveryState> {
    return this.locked(() => this.updateStateUnlocked(fn));
  }
}

/** The spilled alerts among a spill folder's names, oldest first. */
function spillNames(names: string[]): string[] {
  return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
}

/** A state file's text, '' when it does not exist (readText, synchronously). */
function readTextSync(path: string): string {
  try {
    return readStateSync(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return '';
    throw err;
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
