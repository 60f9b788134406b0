/**
 * The copy threads of local restore: a few worker threads (restore-worker.ts) copy, hash and
 * place files while the main thread walks the file list, makes folders and keeps the count, so
 * a restore works on every core as restic's does (the copying, not just the hashing: on small
 * files the syscalls are most of the work). Jobs go in batches (one message per 32 files, or
 * per MiB, all into one folder); a batch not yet full is sent as soon as the main thread has
 * nothing else to do. A batch of small files goes to the thread that still has files in flight
 * into that folder, if one has, else to the thread with the least work queued: the threads work
 * in different folders. Creating a file holds its folder's lock in the kernel for the whole
 * inode allocation, which on ext4 without a journal scans past every recently deleted inode
 * (milliseconds a file right after a tree was removed, most of a restore's time then); a second
 * thread creating or renaming in the same folder would queue on that lock, spinning on a core
 * meanwhile, where in another folder it allocates in parallel. Large files go to the least
 * busy thread: one create each, and their copying is what wants both cores.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromThreadError, type CopyJob, type CopyResult } from './restore-copy.js';

const BATCH_FILES = 32;
const BATCH_BYTES = 1 << 20;
/** What a job costs its thread beyond its bytes (the syscalls of a file), for picking the least busy thread. */
const FILE_COST = 16 << 10;
/** Files from this size on are copied by whichever thread is least busy (see pick). */
const LARGE = 1 << 20;

/** Copy threads: one per core, at least 2 (a thread waiting on the disk leaves the core to the other), at most 4. */
export const COPY_THREADS = Math.min(4, Math.max(2, availableParallelism()));
/**
 * Files in flight: enough for the walk to run several folders ahead of the threads (a thread
 * that finished its folder finds the next one queued, not all the work held by the other
 * thread's folder), and few enough that the folders they land in (each open until its files
 * are in) stay far below the usual limit of 1,024 open files.
 */
export const COPY_IN_FLIGHT = 16 * BATCH_FILES;
/** Descriptors left for everything else: Node's own, the threads' file and temp file, the lock, the file list. */
const FD_RESERVE = 64;

/** The process's open-file limit (soft: Node raises it to the hard one at start), or undefined where /proc does not tell. */
function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Files in flight for a restore whose deepest file is `depth` folders below the snapshot: the
 * walk and every copy thread each hold a chain of up to `depth` open folders, and each file in
 * flight may hold its own folder open. What the open-file limit leaves after the chains bounds
 * the files in flight (never under one batch), so a deep tree with many small folders restores
 * within the limit that restored it before the walk ran folders ahead.
 */
export function copyInFlight(depth: number, limit = openFileLimit()): number {
  if (limit === undefined) return COPY_IN_FLIGHT;
  const room = limit - (COPY_THREADS + 1) * (depth + 1) - FD_RESERVE;
  return Math.max(BATCH_FILES, Math.min(COPY_IN_FLIGHT, room));
}

export type CopyOutcome = { landed: true } | { sha: string } | { cancelled: true };

interface Waiting {
  resolve: (o: CopyOutcome) => void;
  reject: (err: Error) => void;
  cost: number;
  /** the folder it lands in, when it counts towards the thread's hold on that folder (a small file) */
  dirFd?: number;
}

interface Thread {
  worker: Worker;
  /** bytes (plus FILE_COST a file) sent and not answered yet */
  load: number;
  waiting: Map<number, Waiting>;
  /** open folders it has small files in flight into, with how many */
  dirs: Map<number, number>;
  /** why it stopped, once it has (an exit is an error while the run goes on) */
  dead?: Error;
}

/** The worker's script beside this module (tsc's dist/backup/), or at the bundle's top when this code sits in a chunk below it. */
function workerScript(): URL {
  const here = new URL('./restore-worker.js', import.meta.url);
  const up = new URL('../restore-worker.js', import.meta.url);
  return existsSync(fileURLToPath(here)) || !existsSync(fileURLToPath(up)) ? here : up;
}

export class CopyThreads {
  private readonly threads: Thread[] = [];
  private readonly stop = new SharedArrayBuffer(4);
  private batch: { job: CopyJob; waiting: Waiting }[] = [];
  private batchBytes = 0;
  private flushQueued = false;
  private nextId = 0;

  constructor(private readonly snapshotDir: string) {}

  /** Restores one file in a copy thread: landed, did not match (with the hash found), or cancelled (the restore stopped: not begun, or a large copy given up). */
  copy(job: Omit<CopyJob, 'id'>): Promise<CopyOutcome> {
    return new Promise((resolve, reject) => {
      const cost = job.size + FILE_COST;
      if (this.batch.length > 0 && this.batch[0]!.job.dirFd !== job.dirFd) this.flush();
      const waiting: Waiting = { resolve, reject, cost, ...(job.size < LARGE ? { dirFd: job.dirFd } : {}) };
      this.batch.push({ job: { ...job, id: this.nextId++ }, waiting });
      this.batchBytes += job.size;
      if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.flush();
      else if (!this.flushQueued) {
        this.flushQueued = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Jobs not begun yet, and large copies under way, are answered cancelled from now on (a failure, or the run was interrupted). */
  halt(): void {
    Atomics.store(new Int32Array(this.stop), 0, 1);
  }

  /** Ends the threads once their work is done (each closes the folders it opened: descriptors belong to the process, not the thread). */
  async close(): Promise<void> {
    await Promise.all(
      this.threads.map(async (t) => {
        if (t.dead) return;
        const ended = new Promise((resolve) => t.worker.once('exit', resolve));
        t.worker.postMessage(null);
        await ended;
      }),
    );
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const t = this.pick(batch[0]!.job.dirFd, batch.some((b) => b.waiting.dirFd !== undefined));
    if (t.dead) {
      for (const { waiting } of batch) waiting.reject(t.dead);
      return;
    }
    for (const { job, waiting } of batch) {
      t.waiting.set(job.id, waiting);
      t.load += waiting.cost;
      if (waiting.dirFd !== undefined) t.dirs.set(waiting.dirFd, (t.dirs.get(waiting.dirFd) ?? 0) + 1);
    }
    t.worker.postMessage(batch.map((b) => b.job));
  }

  /** The least busy thread, starting another while there are fewer than COPY_THREADS and all are busy (a stopped one only when no other is left). */
  private pick(dirFd: number, small: boolean): Thread {
    if (small) for (const t of this.threads) if (!t.dead && t.dirs.has(dirFd)) return t;
    let best: Thread | undefined;
    for (const t of this.threads) if (!t.dead && (!best || t.load < best.load)) best = t;
    if (best && (best.load === 0 || this.threads.length >= COPY_THREADS)) return best;
    return this.threads.length < COPY_THREADS ? this.start() : this.threads[0]!;
  }

  private start(): Thread {
    const worker = new Worker(workerScript(), { workerData: { snapshotDir: this.snapshotDir, stop: this.stop }, stdout: false });
    const t: Thread = { worker, load: 0, waiting: new Map(), dirs: new Map() };
    worker.on('message', (results: CopyResult[]) => {
      for (const r of results) {
        const w = t.waiting.get(r.id)!;
        t.waiting.delete(r.id);
        t.load -= w.cost;
        if (w.dirFd !== undefined) {
          const left = t.dirs.get(w.dirFd)! - 1;
          if (left === 0) t.dirs.delete(w.dirFd);
          else t.dirs.set(w.dirFd, left);
        }
        if ('error' in r) w.reject(fromThreadError(r.error));
        else w.resolve(r);
      }
    });
    const fail = (err: Error) => {
      // Its errno code stays on it: a thread that could not load its code for want of
      // descriptors (EMFILE) is reported with the open-file limit's fix, as the main thread's is.
      t.dead ??= Object.assign(new Error(`a copy thread stopped: ${err.message}`), { code: (err as NodeJS.ErrnoException).code });
      for (const w of t.waiting.values()) w.reject(t.dead);
      t.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`it exited with code ${code}`)));
    this.threads.push(t);
    return t;
  }
}
