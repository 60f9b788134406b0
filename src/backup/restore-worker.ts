/**
 * A copy thread of local restore (started by src/backup/restore-threads.ts): takes batches of
 * CopyJobs, restores them one after another (restoreFile: copy, hash, check, rename) and
 * answers each batch with its results in order; null ends the thread. Jobs still queued once the main thread sets
 * the stop flag (a failure, or the run was interrupted) are answered `cancelled`, untouched; so is
 * a large file whose copy was under way (its temp file removed).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Beneath } from './walk.js';
import { restoreFile, toThreadError, type CopyJob, type CopyResult } from './restore-copy.js';

const { snapshotDir, stop } = workerData as { snapshotDir: string; stop: SharedArrayBuffer };
const stopped = new Int32Array(stop);
const port = parentPort!;
/** The snapshot's files are reached folder by folder, as on the main thread: a tree deeper than PATH_MAX restores. */
const stored = new Beneath(snapshotDir);

const isStopped = () => Atomics.load(stopped, 0) !== 0;

async function runBatch(jobs: CopyJob[]): Promise<void> {
  const results: CopyResult[] = [];
  for (const job of jobs) {
    if (isStopped()) results.push({ id: job.id, cancelled: true });
    else results.push(await restoreFile(job, stored, isStopped).catch((err: unknown) => ({ id: job.id, error: toThreadError(err) })));
  }
  port.postMessage(results);
}

let queue = Promise.resolve();
/** A batch, or null: no more work, so close the snapshot's folders and let the thread end. */
port.on('message', (jobs: CopyJob[] | null) => {
  queue = queue.then(() => {
    if (jobs) return runBatch(jobs);
    stored.close();
    port.close();
  });
});
