/**
 * The alert buffer: undelivered alerts, one JSON line each, oldest first, on the backups volume.
 * Every change is made under a short mutex (`<buffer>.lock`): appends are one write(2), removals
 * re-read the file and replace it atomically, so no concurrent append is lost or torn.
 * Torn or corrupt lines are moved to `<buffer>.corrupt` and reported; the rest stays usable.
 * Past the cap the oldest alerts are dropped and counted in the delivery state: never silently.
 */
import { promises as fs } from 'node:fs';
import { appendLines, readJsonState, writeFileAtomic, writeJsonAtomic, isObject, type Reporter } from '../state/files.js';
import { withMutex } from '../state/lock.js';
import { errnoCode } from '../errors.js';
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
}

export class AlertBuffer {
  readonly mutexPath: string;
  readonly corruptPath: string;

  constructor(
    readonly file: string,
    readonly deliveryStatePath: string,
    private readonly max: number,
    private readonly report: Reporter,
  ) {
    this.mutexPath = `${file}.lock`;
    this.corruptPath = `${file}.corrupt`;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withMutex(this.mutexPath, 'alert buffer', fn, 10_000, this.report);
  }

  private async readText(): Promise<string> {
    try {
      return await fs.readFile(this.file, 'utf8');
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

  async append(alert: Alert): Promise<void> {
    await this.locked(async () => {
      const size = await fs.stat(this.file).then((s) => s.size, () => 0);
      // A crash mid-write may have left a line without its newline: never glue onto it.
      let prefix = '';
      if (size > 0) {
        const fh = await fs.open(this.file, 'r');
        const { buffer } = await fh.read(Buffer.alloc(1), 0, 1, size - 1);
        await fh.close();
        if (buffer[0] !== 0x0a) prefix = '\n';
      }
      await appendLines(this.file, [prefix + JSON.stringify(alert)]);
      const text = await this.readText();
      const count = countLines(text);
      if (count > this.max) {
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
    });
  }

  /** All buffered alerts, oldest first; bad lines are moved aside on the way. */
  async load(): Promise<Alert[]> {
    return this.locked(async () => {
      const { alerts, bad } = this.parse(await this.readText());
      if (bad.length > 0) {
        await this.moveCorrupt(bad);
        await this.rewrite(alerts);
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

  private async moveCorrupt(bad: string[]): Promise<void> {
    if (bad.length === 0) return;
    await appendLines(this.corruptPath, bad);
    this.report(`alert buffer ${this.file}: ${bad.length} corrupt line(s) moved to ${this.corruptPath}; the other alerts are kept`);
  }

  async stats(): Promise<BufferStats> {
    let text: string;
    try {
      text = await this.readText();
    } catch (err) {
      this.report(`alert buffer ${this.file} is unreadable (${errnoCode(err) ?? 'error'})`);
      return { count: 0, sizeBytes: 0 };
    }
    const { alerts } = this.parse(text);
    return { count: alerts.length, oldest: alerts[0]?.time, newest: alerts[alerts.length - 1]?.time, sizeBytes: Buffer.byteLength(text) };
  }

  async readState(): Promise<DeliveryState> {
    const s = await readJsonState<DeliveryState>(this.deliveryStatePath, this.report, isObject);
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

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
