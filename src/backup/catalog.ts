/**
 * Finding a snapshot by id or 'latest', locally or on the remote, with its manifest and
 * file list (checked against the manifest's hash).
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { UsageError, L2Error } from '../errors.js';
import { FILES, checkId, listLocal, listSnapshotDirs, type LocalSnapshotRef } from './layout.js';
import { parseEntries, readManifest, type Entry, type Manifest } from './manifest.js';
import { Remote, remoteSettings } from './remote.js';

export type Origin = 'local' | 'remote';

export interface ResolvedSnapshot {
  id: string;
  origin: Origin;
  manifest: Manifest;
  entries: Entry[];
  /** local folder (local origin) */
  dir?: string;
  remote?: Remote;
}

export async function openRemote(cfg: Config): Promise<Remote> {
  const settings = remoteSettings(cfg);
  if (!settings) throw new UsageError('BACKUP_BUCKET is not set, so there is no remote to use; set it in the env file or use --from local');
  return Remote.open(settings);
}

export async function readLocalEntries(dir: string, manifest: Manifest): Promise<Entry[]> {
  const text = gunzipSync(await fs.readFile(join(dir, FILES))).toString('utf8');
  if (createHash('sha256').update(text).digest('hex') !== manifest.filesSha256) throw new L2Error(`file list of ${manifest.id} does not match its manifest; the snapshot is damaged (run 'l2backup verify ${manifest.id}')`);
  return parseEntries(text, join(dir, FILES));
}

/** Local snapshot by id (main or pre-restore) or 'latest' (newest nightly/snapshot, never a capture). */
export async function findLocal(cfg: Config, idArg: string): Promise<LocalSnapshotRef> {
  if (idArg === 'latest') {
    const main = await listSnapshotDirs(cfg.BACKUP_ROOT, false);
    const newest = main[main.length - 1];
    if (!newest) throw new UsageError(`no complete snapshot in ${cfg.BACKUP_ROOT}; run 'l2backup snapshot' first or use --from remote`);
    return newest;
  }
  const id = checkId(idArg);
  const ref = (await listLocal(cfg.BACKUP_ROOT, true)).find((r) => r.id === id);
  if (!ref) throw new UsageError(`snapshot ${id} is not in ${cfg.BACKUP_ROOT}; see 'l2backup list' (or 'l2backup list --remote' and --from remote)`);
  return ref;
}

export async function resolveSnapshot(cfg: Config, idArg: string, origin: Origin): Promise<ResolvedSnapshot> {
  if (origin === 'local') {
    const ref = await findLocal(cfg, idArg);
    const manifest = await readManifest(ref.dir);
    return { id: ref.id, origin, manifest, entries: await readLocalEntries(ref.dir, manifest), dir: ref.dir };
  }
  if (idArg !== 'latest') checkId(idArg);
  const remote = await openRemote(cfg);
  try {
    let id = idArg;
    if (idArg === 'latest') {
      const ids = await remote.listIds();
      let found: string | undefined;
      for (const candidate of ids.reverse()) {
        if (await remote.isComplete(candidate)) {
          found = candidate;
          break;
        }
      }
      if (!found) throw new UsageError(`no complete snapshot on ${remote.url}`);
      id = found;
    } else if (!(await remote.isComplete(id))) {
      throw new UsageError(`snapshot ${id} is not on ${remote.url} (or its upload never completed); see 'l2backup list --remote'`);
    }
    const manifest = await remote.readManifest(id);
    return { id, origin, manifest, entries: await remote.readEntries(id, manifest), remote };
  } catch (err) {
    remote.destroy();
    if (err instanceof L2Error) throw err;
    throw new L2Error(remote.describe(err));
  }
}

/** `--only models,configs`: names must be sources of the snapshot. */
export function selectSources(manifest: Manifest, entries: Entry[], only: string[] | undefined): string[] {
  const present = [...new Set(entries.map((e) => e.s))];
  if (!only || only.length === 0) return present;
  for (const name of only) {
    if (!present.includes(name)) throw new UsageError(`--only ${name}: snapshot ${manifest.id} has no source "${name}" (it has: ${present.join(', ') || 'none'})`);
  }
  return only;
}
