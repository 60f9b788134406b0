/** Work in flight for restore and verify: local copies and remote downloads share one pool design. */
import { Slots } from './slots.js';

/**
 * Runs tasks with at most `limit` in flight. `start` resolves once the task has started (so a
 * caller walking a tree stays at most `limit` tasks ahead, and a task's synchronous first part
 * runs before the caller goes on) with `ended`, the task's end (never rejected). After a
 * failure no new task starts; `drain` waits for all and throws the first failure.
 */
export class TaskPool {
  private readonly slots: Slots;
  private readonly running = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;

  constructor(limit: number) {
    this.slots = new Slots(limit);
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  async start(task: () => Promise<void>): Promise<{ ended: Promise<void> }> {
    await this.slots.acquire();
    if (this.failure) {
      this.slots.release();
      return { ended: Promise.resolve() };
    }
    const p: Promise<void> = task()
      .catch((err: unknown) => {
        this.failure ??= { err };
      })
      .finally(() => {
        this.running.delete(p);
        this.slots.release();
      });
    this.running.add(p);
    return { ended: p };
  }

  /** Waits for every task started, failures included (before the folders they write into are closed). */
  async settle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running]);
  }

  /** Waits for every task started; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failure) throw this.failure.err;
  }
}
