/**
 * `l2backup cleanup-logs`: the weekly job. Deletes files in the logs source older than
 * LOG_RETENTION_DAYS, but only those whose current content (sha256) is in a complete snapshot.
 * A log that is in no backup is never deleted.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { listSnapshotDirs } from './layout.js';
import { readEntries } from './manifest.js';
import { FILES } from './layout.js';
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
  // Every (path, size, mtime) -> sha256 the complete snapshots hold for this source.
  const known = new Map<string, Set<string>>();
  for (const ref of await listSnapshotDirs(cfg.BACKUP_ROOT, false)) {
    for await (const e of readEntries(join(ref.dir, FILES))) {
      if (e.s !== sourceName || e.t !== 'f' || !e.sha256) continue;
      const k = `${e.p}\0${e.size}\0${e.mtime}`;
      let set = known.get(k);
      if (!set) known.set(k, (set = new Set()));
      set.add(e.sha256);
    }
  }
  const cutoff = Date.now() - cfg.LOG_RETENTION_DAYS * 86_400_000;
  const result: CleanupResult = { deleted: [], keptNotBackedUp: [], bytesFreed: 0 };
  const { default: fg } = await import('fast-glob');
  let entries: string[];
  try {
    entries = await fg('**', { cwd: src.path, dot: true, onlyFiles: true, followSymbolicLinks: false });
  } catch {
    return result;
  }
  for (const rel of entries.sort()) {
    ctx.signal.throwIfAborted();
    const abs = join(src.path, rel);
    const st = await fs.lstat(abs).catch(() => undefined);
    if (!st?.isFile() || st.mtimeMs >= cutoff) continue;
    const hashes = known.get(`${rel}\0${st.size}\0${Math.floor(st.mtimeMs)}`);
    let backedUp = false;
    if (hashes) {
      const h = createHash('sha256');
      for await (const chunk of (await fs.open(abs, 'r')).createReadStream()) h.update(chunk as Buffer);
      backedUp = hashes.has(h.digest('hex'));
    }
    if (!backedUp) {
      result.keptNotBackedUp.push(rel);
      continue;
    }
    if (!dryRun) await fs.rm(abs);
    result.deleted.push(rel);
    result.bytesFreed += st.size;
  }
  return result;
}
