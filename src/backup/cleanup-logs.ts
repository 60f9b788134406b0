/**
 * `l2backup cleanup-logs`: the weekly job. Deletes files in the logs source older than
 * LOG_RETENTION_DAYS, but only those whose current content (sha256) is in a complete snapshot.
 * A log that is in no backup is never deleted.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { FILES, listSnapshotDirs } from './layout.js';
import { entryPath, readEntries } from './manifest.js';
import { hashFile } from './hash.js';
import { walk } from './walk.js';
import type { JobContext } from './jobs.js';

export interface CleanupResult {
  deleted: string[];
  keptNotBackedUp: string[];
  bytesFreed: number;
}

export async function cleanupLogs(ctx: JobContext, sourceName: string, dryRun: boolean): Promise<CleanupResult> {
  const { cfg } = ctx;
  const src = cfg.BACKUP_SOURCES.find((s) => s.name === sourceName);
  if (!src) throw new UsageError(`BACKUP_SOURCES has no source named "${sourceName}"; name the logs source with --source`);
  // Every (path bytes, size, mtime) -> sha256 the complete snapshots hold for this source.
  const known = new Map<string, Set<string>>();
  for (const ref of await listSnapshotDirs(cfg.BACKUP_ROOT, false)) {
    for await (const e of readEntries(join(ref.dir, FILES))) {
      if (e.s !== sourceName || e.t !== 'f' || !e.sha256) continue;
      const k = `${entryPath(e).toString('latin1')}\0${e.size}\0${e.mtime}`;
      let set = known.get(k);
      if (!set) known.set(k, (set = new Set()));
      set.add(e.sha256);
    }
  }
  const cutoff = Date.now() - cfg.LOG_RETENTION_DAYS * 86_400_000;
  const result: CleanupResult = { deleted: [], keptNotBackedUp: [], bytesFreed: 0 };
  let events;
  try {
    events = walk(await fs.realpath(src.path));
  } catch {
    return result;
  }
  try {
    for (const ev of events) {
      ctx.signal.throwIfAborted();
      if (ev.type !== 'entry' || ev.kind !== 'f') continue;
      const mtimeMs = Number(ev.st.mtimeNs / 1_000_000n);
      if (mtimeMs >= cutoff) continue;
      const rel = ev.rel.toString('utf8');
      const hashes = known.get(`${ev.rel.toString('latin1')}\0${ev.st.size}\0${Math.floor(mtimeMs)}`);
      const digest = hashes ? await hashFile(ev.abs).catch(() => undefined) : undefined; // vanished or replaced meanwhile: keep
      const backedUp = digest !== undefined && hashes!.has(digest.sha256);
      if (!backedUp) {
        result.keptNotBackedUp.push(rel);
        continue;
      }
      if (!dryRun) await fs.rm(ev.abs);
      result.deleted.push(rel);
      result.bytesFreed += Number(ev.st.size);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && result.deleted.length === 0 && result.keptNotBackedUp.length === 0) return result;
    throw err;
  }
  return result;
}
