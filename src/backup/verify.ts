/**
 * `l2backup verify`: re-hash a snapshot against its manifest and report missing, changed and
 * extra files; remotely, download and hash every object (or a sampled fraction).
 */
import { errnoCode } from '../errors.js';
import { FILES, MANIFEST } from './layout.js';
import { entryPath, remoteName, type Entry } from './manifest.js';
import { hashFile } from './hash.js';
import { Beneath, walk } from './walk.js';
import { TaskPool } from './task-pool.js';
import { downloadParts, hashRemoteObject } from './download.js';
import type { ResolvedSnapshot } from './catalog.js';

export interface VerifyReport {
  id: string;
  origin: 'local' | 'remote';
  checkedAt: string;
  files: number;
  checked: number;
  missing: string[];
  changed: string[];
  extra: string[];
  ok: boolean;
}

/** How a name is shown: JSON-escaped, so a newline or a stray byte cannot forge a report line. */
const show = (s: string) => JSON.stringify(s).slice(1, -1);
const nameOf = (e: Entry) => show(`${e.s}/${e.p}`);

export async function verifySnapshot(snap: ResolvedSnapshot, sample: number, signal: AbortSignal, onProgress?: (n: number, total: number) => void): Promise<VerifyReport> {
  const files = snap.entries.filter((e) => e.t === 'f');
  const report: VerifyReport = { id: snap.id, origin: snap.origin, checkedAt: new Date().toISOString(), files: files.length, checked: 0, missing: [], changed: [], extra: [], ok: true };
  const chosen = sample >= 1 ? files : files.filter(() => Math.random() < sample);
  if (snap.origin === 'local') {
    // Files are reached folder by folder (never by whole path): a tree deeper than PATH_MAX verifies too.
    const beneath = new Beneath(snap.dir!);
    try {
      for (const e of chosen) {
        signal.throwIfAborted();
        try {
          const got = await hashFile(beneath.path(Buffer.concat([Buffer.from(`${e.s}/`), entryPath(e)])));
          if (got.size !== e.size || got.sha256 !== e.sha256) report.changed.push(nameOf(e));
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') report.missing.push(nameOf(e));
          else report.changed.push(nameOf(e)); // a symlink or folder where a file belongs
        }
        onProgress?.(++report.checked, chosen.length);
      }
    } finally {
      beneath.close();
    }
    const key = (s: string, raw: Buffer) => (raw.length === 0 ? s : `${s}/${raw.toString('latin1')}`);
    const known = new Set(snap.entries.map((e) => key(e.s, entryPath(e))));
    for (const ev of walk(snap.dir!)) {
      if (ev.rel.length === 0) continue;
      const rel = ev.rel.toString('latin1');
      if (rel === MANIFEST || rel === FILES) continue;
      if (!known.has(rel)) report.extra.push(show(ev.rel.toString('utf8')));
    }
  } else {
    const remote = snap.remote!;
    const prefix = remote.key(snap.id, '');
    const objects = new Map((await remote.listKeys(prefix)).map((o) => [o.key.slice(prefix.length), o.size]));
    // Looked up by the object's own name (remoteName: a name that is not UTF-8 is stored as
    // %XX~l2raw-<hash>), reported JSON-escaped as the local verify does.
    const bad = new Set<Entry>();
    for (const e of files) {
      const name = `${e.s}/${remoteName(e)}`;
      const size = objects.get(name);
      objects.delete(name);
      if (size === undefined) report.missing.push(nameOf(e));
      else if (size !== e.size) report.changed.push(nameOf(e));
      else continue;
      bad.add(e);
    }
    // Objects hashed in parallel (BACKUP_DOWNLOAD_CONCURRENCY), large ones in ranged parts.
    const downloads = new TaskPool(remote.settings.downloadConcurrency);
    const parts = downloadParts(remote.settings);
    const differ = new Set<Entry>();
    for (const e of chosen) {
      signal.throwIfAborted();
      if (downloads.failed) break;
      if (bad.has(e)) continue;
      await downloads.start(async () => {
        const got = await hashRemoteObject(remote, remote.sourceKey(snap.id, e.s, remoteName(e)), e.size ?? 0, { ...parts, signal });
        if (got.size !== e.size || got.sha256 !== e.sha256) differ.add(e);
        onProgress?.(++report.checked, chosen.length);
      });
    }
    await downloads.drain();
    for (const e of chosen) if (differ.has(e)) report.changed.push(nameOf(e)); // in file-list order
    objects.delete(MANIFEST);
    objects.delete(FILES);
    report.extra.push(...[...objects.keys()].map(show));
  }
  report.ok = report.missing.length === 0 && report.changed.length === 0 && report.extra.length === 0;
  return report;
}
