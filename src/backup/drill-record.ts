/**
 * The restore drill's record on the volume: `.l2/backup/last-drill.json` (the last drill) and
 * `drills.jsonl` (every drill). Kept apart from the drill itself so that readers (status, the
 * status page) import only this.
 */
import { join } from 'node:path';
import { appendLines, isObject, readJsonState, writeJsonAtomic, type Reporter } from '../state/files.js';
import { statePaths } from '../state/paths.js';
import { formatBytes, formatDuration } from '../output/index.js';
import type { Origin } from './catalog.js';

export interface DrillRecord {
  /** 'failed': a mismatch, a missing object, or an error; 'interrupted': SIGTERM/SIGINT */
  status: 'ok' | 'failed' | 'interrupted';
  from: Origin;
  startedAt: string;
  finishedAt: string;
  /** the snapshot restored (absent when none could be resolved) */
  id?: string;
  /** fraction of the snapshot's files restored (1: all) */
  sample: number;
  /** time to restore: from finding the snapshot to the last file in place, hash-checked as written */
  restoreMs: number;
  /** reading every restored file back and checking it against the manifest */
  checkMs: number;
  files: number;
  bytes: number;
  /** the whole snapshot, for a sampled drill */
  totalFiles?: number;
  totalBytes?: number;
  /** a sampled drill: restoreMs scaled to the whole snapshot by bytes (an estimate) */
  estimatedFullRestoreMs?: number;
  mismatches: number;
  missing: number;
  /** the first few culprits, for the status page and the alert */
  problems?: string[];
  error?: string;
}

/** Where the last drill's record lives (the status page reads it through readLastDrill). */
export function drillRecordPath(root: string): string {
  return join(statePaths(root).backup, 'last-drill.json');
}

const isDrillRecord = (v: unknown) => isObject(v) && typeof v.status === 'string' && typeof v.finishedAt === 'string';

/** The last drill's record, or undefined (never run, or unreadable: `report` says so). */
export function readLastDrill(root: string, report: Reporter): Promise<DrillRecord | undefined> {
  return readJsonState<DrillRecord>(drillRecordPath(root), report, isDrillRecord);
}

/** Writes the last drill's record atomically and appends it to the history. */
export async function writeDrillRecord(root: string, rec: DrillRecord): Promise<void> {
  await writeJsonAtomic(drillRecordPath(root), rec);
  await appendLines(join(statePaths(root).backup, 'drills.jsonl'), [JSON.stringify(rec)]);
}

/** One line with the three figures (and what went wrong): status, the alert, the status page. */
export function describeDrill(rec: DrillRecord): string {
  if (!rec.id) return `no snapshot to restore from ${rec.from}${rec.error ? `: ${rec.error}` : ''}`;
  const what = `snapshot ${rec.id} from ${rec.from}`;
  const figures = `${rec.files} files, ${formatBytes(rec.bytes)} restored in ${formatDuration(rec.restoreMs)}`;
  const sample = rec.totalFiles !== undefined ? ` (a ${Math.round(rec.sample * 1000) / 10}% sample of ${rec.totalFiles} files, ${formatBytes(rec.totalBytes ?? 0)}${rec.estimatedFullRestoreMs !== undefined ? `; full restore estimated at ${formatDuration(rec.estimatedFullRestoreMs)}` : ''})` : '';
  const problems = rec.mismatches || rec.missing ? `; ${rec.mismatches} changed, ${rec.missing} missing` : '';
  return `${what}: ${figures}${sample}; read back and checked in ${formatDuration(rec.checkMs)}${problems}${rec.error ? `; ${rec.error}` : ''}`;
}
