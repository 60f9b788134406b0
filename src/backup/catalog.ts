/**
 * The catalog: what is known about every snapshot, locally or on the remote, for each of its
 * sources (complete or partial) and for its remote copy (pending, uploaded, skipped), with its
 * recorded finish time. Retention, "latest" and upload planning read it; the choices made from
 * it are pure functions, so they can be tested over any catalog and any clock.
 * Also: finding a snapshot by id or 'latest', with its manifest and checked file list.
 */
import { gunzipSync } from 'node:zlib';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { UsageError, L2Error } from '../errors.js';
import { FILES, checkId, idTime, listLocal, type LocalSnapshotRef, type SnapshotKind } from './layout.js';
import { parseEntries, readManifest, type Entry, type Manifest } from './manifest.js';
import { sha256 } from './hash.js';
import { Remote, remoteSettings } from './remote.js';
import { deletedFromRemote, type RemoteRecord, type RemoteState } from './records.js';

export type Origin = 'local' | 'remote';

export type SourceState = 'complete' | 'partial';

export interface CatalogEntry {
  id: string;
  kind: SnapshotKind;
  /** the recorded finish time (manifest), ms; the id's time when the manifest cannot be read */
  finishedAt: number;
  /** per source: complete (status ok) or partial (missing, unreadable, partly read) */
  sources: Record<string, SourceState>;
  /** the remote copy: 'none' when the snapshot was never meant to go up */
  remote: RemoteState | 'none';
  /** the manifest could not be read: never "complete" for anything */
  damaged?: boolean;
  /** the uploader found it cannot go up (damaged local copy, key rejected): never a link base */
  unuploadable?: boolean;
  /** local folder */
  dir?: string;
}

export type Catalog = CatalogEntry[];

/** Nightly and snapshot runs are backups to fall back on; pre-restore captures are not. */
export const isBackup = (e: CatalogEntry) => e.kind === 'nightly' || e.kind === 'snapshot';

/** Newest first by recorded finish time (the id breaks ties). */
export function byFinishDesc(a: CatalogEntry, b: CatalogEntry): number {
  return b.finishedAt - a.finishedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** A snapshot recorded as finished later than `now`: the clock jumped back since (or it did then). */
export const fromFuture = (e: CatalogEntry, now: number) => e.finishedAt > now;

export function catalogEntry(id: string, manifest: Manifest | undefined, remote: RemoteState | 'none', dir?: string): CatalogEntry {
  if (!manifest) return { id, kind: 'snapshot', finishedAt: idTime(id), sources: {}, remote, damaged: true, ...(dir ? { dir } : {}) };
  const finished = Date.parse(manifest.finishedAt);
  const sources: Record<string, SourceState> = {};
  for (const s of manifest.sources) sources[s.name] = s.status === 'ok' ? 'complete' : 'partial';
  return { id, kind: manifest.kind, finishedAt: Number.isFinite(finished) ? finished : idTime(id), sources, remote, ...(dir ? { dir } : {}) };
}

/**
 * "latest": the newest nightly/snapshot (by recorded finish time, never one from the future
 * while any other exists) that holds every asked-for source complete. Without `sources`: the
 * newest that holds all its sources complete, else (every run had some source missing) the newest.
 */
export function latestOf(catalog: Catalog, now: number, sources?: string[]): CatalogEntry | undefined {
  const backups = catalog.filter((e) => isBackup(e) && !e.damaged).sort(byFinishDesc);
  const present = backups.filter((e) => !fromFuture(e, now));
  // A complete snapshot beats a partial one even when the clock makes it look "from the future"
  // (the clock is more likely wrong than the snapshot); among equals, one from the present wins.
  const complete = sources && sources.length ? (e: CatalogEntry) => sources.every((s) => e.sources[s] === 'complete') : (e: CatalogEntry) => Object.values(e.sources).every((s) => s === 'complete');
  const found = present.find(complete) ?? backups.find(complete);
  if (found || (sources && sources.length)) return found;
  return present[0] ?? backups[0];
}

/**
 * The snapshot a new one links unchanged files from: the newest backup not from the future and
 * not known damaged (unreadable manifest, or skipped by the uploader because its copy does not
 * match its manifest): damage in a base would spread to every snapshot linked from it.
 */
export function baseOf(catalog: Catalog, now: number): CatalogEntry | undefined {
  return catalog.filter((e) => isBackup(e) && !e.damaged && !e.unuploadable && !fromFuture(e, now)).sort(byFinishDesc)[0];
}

/** The local catalog: every published snapshot and capture, with its remote state. */
export async function localCatalog(root: string, remoteRecords: RemoteRecord[]): Promise<Catalog> {
  const remote = new Map(remoteRecords.map((r) => [r.id, r]));
  const out: Catalog = [];
  for (const ref of await listLocal(root, true)) {
    let manifest: Manifest | undefined;
    try {
      manifest = await readManifest(ref.dir);
    } catch {
      manifest = undefined;
    }
    const rec = remote.get(ref.id);
    const entry = catalogEntry(ref.id, manifest, rec?.state ?? 'none', ref.dir);
    if (rec && rec.state === 'skipped' && !deletedFromRemote(rec)) entry.unuploadable = true;
    // The folder says what it is even when the manifest cannot be read.
    if (ref.preRestore) entry.kind = 'emergency-pre-restore';
    else if (entry.kind === 'emergency-pre-restore') entry.kind = 'snapshot';
    out.push(entry);
  }
  return out;
}

/** The remote catalog: complete remote snapshots (those with a manifest). */
export async function remoteCatalog(remote: Remote): Promise<{ catalog: Catalog; incomplete: string[] }> {
  const catalog: Catalog = [];
  const incomplete: string[] = [];
  for (const id of await remote.listIds()) {
    if (!(await remote.isComplete(id))) {
      incomplete.push(id);
      continue;
    }
    let manifest: Manifest | undefined;
    try {
      manifest = await remote.readManifest(id);
    } catch (err) {
      if (!(err instanceof L2Error)) throw err;
    }
    catalog.push(catalogEntry(id, manifest, 'uploaded'));
  }
  return { catalog, incomplete };
}

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
  if (sha256(text) !== manifest.filesSha256) throw new L2Error(`file list of ${manifest.id} does not match its manifest; the snapshot is damaged (run 'l2backup verify ${manifest.id}')`);
  return parseEntries(text, join(dir, FILES));
}

/** Local snapshot by id (main or pre-restore) or 'latest' (see latestOf; never a capture). */
export async function findLocal(cfg: Config, idArg: string, sources?: string[]): Promise<LocalSnapshotRef> {
  if (idArg === 'latest') {
    const newest = latestOf(await localCatalog(cfg.BACKUP_ROOT, []), Date.now(), sources);
    if (!newest) throw new UsageError(`no complete snapshot${sources?.length ? ` of ${sources.join(', ')}` : ''} in ${cfg.BACKUP_ROOT}; run 'l2backup snapshot' first or use --from remote`);
    return { id: newest.id, dir: newest.dir!, preRestore: false };
  }
  const id = checkId(idArg);
  const ref = (await listLocal(cfg.BACKUP_ROOT, true)).find((r) => r.id === id);
  if (!ref) throw new UsageError(`snapshot ${id} is not in ${cfg.BACKUP_ROOT}; see 'l2backup list' (or 'l2backup list --remote' and --from remote)`);
  return ref;
}

/** `sources`: for 'latest', the sources that must be complete in it (restore --only). */
export async function resolveSnapshot(cfg: Config, idArg: string, origin: Origin, sources?: string[]): Promise<ResolvedSnapshot> {
  if (origin === 'local') {
    const ref = await findLocal(cfg, idArg, sources);
    const manifest = await readManifest(ref.dir);
    return { id: ref.id, origin, manifest, entries: await readLocalEntries(ref.dir, manifest), dir: ref.dir };
  }
  if (idArg !== 'latest') checkId(idArg);
  const remote = await openRemote(cfg);
  try {
    let id = idArg;
    if (idArg === 'latest') {
      const found = latestOf((await remoteCatalog(remote)).catalog, Date.now(), sources);
      if (!found) throw new UsageError(`no complete snapshot${sources?.length ? ` of ${sources.join(', ')}` : ''} on ${remote.url}`);
      id = found.id;
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
