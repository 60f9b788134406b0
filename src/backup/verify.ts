/**
 * `l2backup verify`: re-hash a snapshot against its manifest and report missing, changed and
 * extra files; remotely, download and hash every object (or a sampled fraction).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { FILES, MANIFEST } from './layout.js';
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

async function hashPath(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const fh = await fs.open(path, 'r');
  try {
    for await (const chunk of fh.createReadStream()) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } finally {
    await fh.close().catch(() => {});
  }
  return { sha256: h.digest('hex'), size };
}

export async function verifySnapshot(snap: ResolvedSnapshot, sample: number, signal: AbortSignal, onProgress?: (n: number, total: number) => void): Promise<VerifyReport> {
  const files = snap.entries.filter((e) => e.t === 'f');
  const report: VerifyReport = { id: snap.id, origin: snap.origin, checkedAt: new Date().toISOString(), files: files.length, checked: 0, missing: [], changed: [], extra: [], ok: true };
  const chosen = sample >= 1 ? files : files.filter(() => Math.random() < sample);
  if (snap.origin === 'local') {
    for (const e of chosen) {
      signal.throwIfAborted();
      const name = `${e.s}/${e.p}`;
      try {
        const got = await hashPath(join(snap.dir!, e.s, e.p));
        if (got.size !== e.size || got.sha256 !== e.sha256) report.changed.push(name);
      } catch {
        report.missing.push(name);
      }
      onProgress?.(++report.checked, chosen.length);
    }
    const { default: fg } = await import('fast-glob');
    const known = new Set(snap.entries.map((e) => (e.p === '' ? e.s : `${e.s}/${e.p}`)));
    for await (const rel of fg.stream('**', { cwd: snap.dir!, dot: true, onlyFiles: false, followSymbolicLinks: false }) as AsyncIterable<string>) {
      if (rel === MANIFEST || rel === FILES) continue;
      if (!known.has(rel)) report.extra.push(rel);
    }
  } else {
    const remote = snap.remote!;
    const prefix = remote.key(snap.id, '');
    const objects = new Map((await remote.listKeys(prefix)).map((o) => [o.key.slice(prefix.length), o.size]));
    for (const e of files) {
      const name = `${e.s}/${e.p}`;
      const size = objects.get(name);
      objects.delete(name);
      if (size === undefined) report.missing.push(name);
      else if (size !== e.size) report.changed.push(name);
    }
    for (const e of chosen) {
      signal.throwIfAborted();
      const name = `${e.s}/${e.p}`;
      if (report.missing.includes(name) || report.changed.includes(name)) continue;
      const got = await remote.hashObject(remote.sourceKey(snap.id, e.s, e.p), signal);
      if (got.size !== e.size || got.sha256 !== e.sha256) report.changed.push(name);
      onProgress?.(++report.checked, chosen.length);
    }
    objects.delete(MANIFEST);
    objects.delete(FILES);
    report.extra.push(...objects.keys());
  }
  report.ok = report.missing.length === 0 && report.changed.length === 0 && report.extra.length === 0;
  return report;
}
