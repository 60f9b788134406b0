/**
 * `l2backup restore`: the runbook's Scenarios 2-4 in one command. Takes an emergency-pre-restore
 * capture first (when writing into the live sources), writes each file through a temp file that
 * is hash-checked before it is renamed into place, and never writes outside the target: entry
 * paths are checked, and every parent folder's real path must lie inside the target.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, dirname, basename, relative, isAbsolute, resolve } from 'node:path';
import { EXIT, L2Error, UsageError, errorMessage } from '../errors.js';
import { formatBytes, formatDuration } from '../output/index.js';
import { Alerter } from '../alert/index.js';
import { ensureDir } from '../state/files.js';
import { backupLocked, withBackupLock, type JobContext } from './jobs.js';
import { resolveSnapshot, selectSources, type Origin, type ResolvedSnapshot } from './catalog.js';
import { safeRelative, type Entry } from './manifest.js';

export interface RestoreOptions {
  only?: string[];
  from: Origin;
  target?: string;
  dryRun: boolean;
  preRestore: boolean;
}

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Refuses manifests that would write through a symlink or outside the source. */
export function checkEntries(entries: Entry[], id: string): void {
  const links = new Set(entries.filter((e) => e.t === 'l').map((e) => `${e.s}/${e.p}`));
  for (const e of entries) {
    if (!safeRelative(e.p) || !safeRelative(e.s) || e.s === '') throw new L2Error(`snapshot ${id} has an unsafe path "${e.s}/${e.p}"; refusing to restore from it`);
    const parts = e.p.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (links.has(`${e.s}/${parts.slice(0, i).join('/')}`)) throw new L2Error(`snapshot ${id}: "${e.s}/${e.p}" lies below a symlink; refusing to restore through it`);
    }
  }
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await fs.open(path, 'r');
  try {
    for await (const chunk of fh.createReadStream()) h.update(chunk as Buffer);
  } finally {
    await fh.close().catch(() => {});
  }
  return h.digest('hex');
}

export async function restore(ctx: JobContext, idArg: string, opts: RestoreOptions): Promise<number> {
  const { cfg, out } = ctx;
  const target = opts.target ? resolve(opts.target) : undefined;
  if (target && (within(cfg.BACKUP_ROOT, target) || within(target, cfg.BACKUP_ROOT))) throw new UsageError(`--target ${target} overlaps BACKUP_ROOT ${cfg.BACKUP_ROOT}; restore somewhere else`);
  const snap = await resolveSnapshot(cfg, idArg, opts.from);
  try {
    const sources = selectSources(snap.manifest, snap.entries, opts.only);
    checkEntries(snap.entries, snap.id);
    const roots = new Map<string, string>();
    for (const s of sources) {
      const configured = cfg.BACKUP_SOURCES.find((c) => c.name === s)?.path;
      const root = target ? join(target, s) : configured;
      if (!root) throw new UsageError(`source "${s}" of snapshot ${snap.id} has no path in BACKUP_SOURCES; restore it with --target DIR`);
      if (within(cfg.BACKUP_ROOT, root)) throw new UsageError(`restoring ${s} to ${root} would write into BACKUP_ROOT; use --target`);
      roots.set(s, root);
    }
    const chosen = snap.entries.filter((e) => roots.has(e.s));
    const files = chosen.filter((e) => e.t === 'f');
    const bytes = files.reduce((n, e) => n + (e.size ?? 0), 0);
    if (opts.dryRun) {
      out.print(`would restore snapshot ${snap.id} (${snap.origin}) : ${files.length} files, ${formatBytes(bytes)}`);
      for (const [s, root] of roots) out.print(`  ${s} -> ${root} (${chosen.filter((e) => e.s === s && e.t === 'f').length} files)`);
      if (!target && opts.preRestore) out.print('  an emergency-pre-restore capture of the current state would be taken first');
      return EXIT.OK;
    }
    return await withBackupLock(ctx, `l2backup restore ${snap.id}`, async () => {
      if (!target && opts.preRestore) {
        out.info('taking an emergency-pre-restore capture of the current state first');
        const code = await backupLocked(ctx, 'emergency-pre-restore');
        if (code === EXIT.FAILED) throw new L2Error('the emergency-pre-restore capture failed, so nothing was restored; fix that or pass --no-pre-restore');
      }
      return writeAll(ctx, snap, chosen, roots, bytes);
    });
  } finally {
    snap.remote?.destroy();
  }
}

async function writeAll(ctx: JobContext, snap: ResolvedSnapshot, entries: Entry[], roots: Map<string, string>, bytes: number): Promise<number> {
  const { out } = ctx;
  const started = Date.now();
  const progress = await out.progress(`restoring ${snap.id}`);
  const realRoots = new Map<string, string>();
  for (const [s, root] of roots) {
    await ensureDir(root);
    realRoots.set(s, await fs.realpath(root));
  }
  const mismatches: string[] = [];
  let done = 0;
  let doneBytes = 0;
  const dirs = entries.filter((e) => e.t === 'd').sort((a, b) => a.p.length - b.p.length);
  for (const d of dirs) {
    const path = join(realRoots.get(d.s)!, d.p);
    await fs.mkdir(path, { recursive: true, mode: 0o700 });
  }
  const safeParent = async (s: string, p: string): Promise<string> => {
    const root = realRoots.get(s)!;
    const dest = join(root, p);
    const parent = await fs.realpath(dirname(dest));
    if (!within(root, parent)) throw new L2Error(`refusing to write ${s}/${p}: ${dirname(dest)} leads outside ${root} (a symlink in the target?)`);
    return join(parent, basename(dest));
  };
  for (const e of entries) {
    ctx.signal.throwIfAborted();
    if (e.t === 'd') continue;
    if (e.t === 'l') {
      const dest = await safeParent(e.s, e.p);
      await fs.rm(dest, { force: true, recursive: false }).catch(() => {});
      await fs.symlink(e.target!, dest);
      continue;
    }
    const dest = await safeParent(e.s, e.p);
    const tmp = join(dirname(dest), `.l2restore-${randomBytes(4).toString('hex')}`);
    try {
      let sha: string;
      if (snap.origin === 'local') {
        await fs.copyFile(join(snap.dir!, e.s, e.p), tmp);
        sha = await hashFile(tmp);
      } else {
        sha = (await snap.remote!.download(snap.remote!.sourceKey(snap.id, e.s, e.p), tmp, ctx.signal)).sha256;
      }
      if (sha !== e.sha256) {
        mismatches.push(`${e.s}/${e.p}`);
        await fs.rm(tmp, { force: true });
        out.error(`${e.s}/${e.p}: content does not match the manifest (sha256 ${sha.slice(0, 12)}…, expected ${e.sha256?.slice(0, 12)}…); left as it was`);
        continue;
      }
      await fs.chmod(tmp, e.mode);
      await fs.utimes(tmp, new Date(e.mtime), new Date(e.mtime));
      await fs.rename(tmp, dest);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => {});
      if (err instanceof L2Error) throw err;
      throw new L2Error(`restoring ${e.s}/${e.p} failed: ${snap.remote ? snap.remote.describe(err) : errorMessage(err)}`);
    }
    done++;
    doneBytes += e.size ?? 0;
    progress.update(`restoring ${snap.id}: ${done} files, ${formatBytes(doneBytes)} of ${formatBytes(bytes)}`);
  }
  for (const d of dirs.reverse()) {
    const path = join(realRoots.get(d.s)!, d.p);
    await fs.chmod(path, d.mode).catch(() => {});
    await fs.utimes(path, new Date(d.mtime), new Date(d.mtime)).catch(() => {});
  }
  const summary = `restored snapshot ${snap.id} (${snap.origin}): ${done} files, ${formatBytes(doneBytes)} into ${[...roots.values()].join(', ')} in ${formatDuration(Date.now() - started)}`;
  const alerter = new Alerter(ctx.cfg, out, 'l2backup');
  if (mismatches.length) {
    progress.fail(`${summary}; ${mismatches.length} file(s) did not match the manifest`);
    await alerter.send({ level: 'error', title: 'restore incomplete', message: `${summary}; ${mismatches.length} file(s) failed their hash check: ${mismatches.slice(0, 5).join(', ')}`, key: 'l2backup:restore' });
    return EXIT.FAILED;
  }
  progress.succeed(`${summary}; every file matched its sha256`);
  await alerter.send({ level: 'info', title: 'restore done', message: summary, key: 'l2backup:restore' });
  return EXIT.OK;
}
