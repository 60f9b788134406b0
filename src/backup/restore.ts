/**
 * `l2backup restore`: the runbook's Scenarios 2-4 in one command. Takes the backup lock first,
 * then resolves the snapshot (so nothing prunes it meanwhile), takes an emergency-pre-restore
 * capture (when writing into the live sources), and writes each file through a temp file that
 * is hash-checked before it is renamed into place.
 *
 * It never writes outside the target through a symlink in the live tree: every folder is
 * opened without following symlinks and everything is done relative to the open folder
 * (/proc/self/fd/N/name stands in for the *at() calls Node lacks). A symlink where the
 * snapshot has a folder is replaced by the folder, and the other way round.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as C, openSync, closeSync, fstatSync, lstatSync, mkdirSync, unlinkSync, renameSync, symlinkSync, fchmodSync, futimesSync, rmSync, readSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { EXIT, L2Error, UsageError, errnoCode, errorMessage } from '../errors.js';
import { formatBytes, formatDuration } from '../output/index.js';
import { Alerter } from '../alert/index.js';
import { ensureDir } from '../state/files.js';
import { backupLocked, withBackupLock, type JobContext } from './jobs.js';
import { findLocal, openRemote, resolveSnapshot, selectSources, type Origin, type ResolvedSnapshot } from './catalog.js';
import { checkId } from './layout.js';
import { comparePaths, entryPath, entryTarget, remoteName, safeRelative, type Entry } from './manifest.js';
import { newHash } from './hash.js';
import { nsToSeconds } from './save.js';
import { RESTORE_TEMP_PREFIX } from './snapshot.js';
import { overlap } from './realpath.js';
import { Slots, TaskPool, downloadObject } from './download.js';

export interface RestoreOptions {
  only?: string[];
  from: Origin;
  target?: string;
  dryRun: boolean;
  preRestore: boolean;
}

const latin1 = (b: Buffer) => b.toString('latin1');

/** Refuses file lists that would write through a symlink or outside the source. */
export function checkEntries(entries: Entry[], id: string): void {
  const links = new Set(entries.filter((e) => e.t === 'l').map((e) => `${e.s}/${latin1(entryPath(e))}`));
  for (const e of entries) {
    const raw = entryPath(e);
    if (!safeRelative(raw) || !safeRelative(e.s) || e.s === '' || e.s.includes('/')) throw new L2Error(`snapshot ${id} has an unsafe path ${JSON.stringify(`${e.s}/${e.p}`)}; refusing to restore from it`);
    const parts = latin1(raw).split('/');
    for (let i = 1; i < parts.length; i++) {
      if (links.has(`${e.s}/${parts.slice(0, i).join('/')}`)) throw new L2Error(`snapshot ${id}: ${JSON.stringify(`${e.s}/${e.p}`)} lies below a symlink; refusing to restore through it`);
    }
  }
}

export async function restore(ctx: JobContext, idArg: string, opts: RestoreOptions): Promise<number> {
  const { cfg, out } = ctx;
  if (opts.target !== undefined && opts.target.trim() === '') throw new UsageError('--target is empty: name the folder to restore into, or leave --target out to restore into the sources');
  if (opts.only !== undefined && opts.only.length === 0) throw new UsageError('--only is empty: name the sources to restore (e.g. --only models,configs), or leave --only out for all');
  if (opts.target !== undefined) await checkTarget(opts.target);
  if (opts.target && (await overlap(cfg.BACKUP_ROOT, opts.target))) throw new UsageError(`--target ${opts.target} overlaps BACKUP_ROOT ${cfg.BACKUP_ROOT} (real paths compared); restore somewhere else`);
  const target = opts.target;
  if (opts.dryRun) return withSnapshot(ctx, idArg, opts, async (snap, plan) => {
    out.print(`would restore snapshot ${snap.id} (${snap.origin}) : ${plan.files} files, ${formatBytes(plan.bytes)}`);
    for (const [s, root] of plan.roots) out.print(`  ${s} -> ${root} (${plan.entries.filter((e) => e.s === s && e.t === 'f').length} files)`);
    if (!target && opts.preRestore) out.print('  an emergency-pre-restore capture of the current state would be taken first');
    return EXIT.OK;
  });
  await preflight(ctx, idArg, opts.from);
  // The lock first: what 'latest' means and whether the snapshot exists cannot change under us.
  return withBackupLock(ctx, `l2backup restore ${idArg}`, () =>
    withSnapshot(ctx, idArg, opts, async (snap, plan) => {
      if (!target && opts.preRestore) {
        out.info('taking an emergency-pre-restore capture of the current state first');
        const code = await backupLocked(ctx, 'emergency-pre-restore');
        if (code === EXIT.FAILED) throw new L2Error('the emergency-pre-restore capture failed, so nothing was restored; fix that or pass --no-pre-restore');
      }
      return writeAll(ctx, snap, plan);
    }),
  );
}

const kindName = (st: { isSymbolicLink(): boolean; isFile(): boolean }) => (st.isSymbolicLink() ? 'a symlink' : st.isFile() ? 'a file' : 'not a folder');

/**
 * --target is the operator's own word: resolved once (a symlink there is followed, with a
 * warning), and must be a folder or not exist yet (it is then made). Nothing below it is ever
 * followed.
 */
async function checkTarget(target: string): Promise<void> {
  const lst = await fs.lstat(target).catch(() => undefined);
  const st = lst?.isSymbolicLink() ? await fs.stat(target).catch(() => undefined) : lst;
  if (lst && !st) throw new UsageError(`--target ${target} is a symlink to nothing; name an existing folder or a new path`);
  if (st && !st.isDirectory()) throw new UsageError(`--target ${target} is ${kindName(st)}, not a folder; name a folder (it is made if missing)`);
}

async function resolveTarget(target: string, out: JobContext['out'], make: boolean): Promise<string> {
  const lst = await fs.lstat(target).catch(() => undefined);
  if (!lst) {
    if (!make) return resolve(target);
    await fs.mkdir(target, { recursive: true, mode: 0o755 }).catch((err: unknown) => {
      throw new UsageError(`--target ${target} cannot be made (${errnoCode(err) ?? errorMessage(err)}); name a folder you can write to`);
    });
  }
  const real = await fs.realpath(target);
  if (lst?.isSymbolicLink()) out.warn(`--target ${target} is a symlink; restoring into ${real} (nothing below it is followed)`);
  return real;
}

/** The folder a source is restored into must be a folder or absent: a file or symlink there is refused, never followed. */
function checkRoot(s: string, root: string, target: string | undefined): void {
  const st = lstatSync(root, { throwIfNoEntry: false });
  if (!st || st.isDirectory()) return;
  if (target) throw new UsageError(`--target ${target}: ${root} is ${kindName(st)} where source ${s} is restored as a folder; move it away or pick another --target`);
  throw new UsageError(`source ${s}: ${root} is ${kindName(st)}, not a folder; restore never follows or replaces it: point BACKUP_SOURCES at the real folder, move it away, or use --target`);
}

/**
 * Usage errors that need no lock (a bad id, an id that is not there, no remote configured), so
 * that a mistyped command changes nothing on disk. The snapshot is resolved again under the lock.
 */
export async function preflight(ctx: JobContext, idArg: string, from: Origin): Promise<void> {
  if (from === 'remote') {
    if (idArg !== 'latest') checkId(idArg);
    (await openRemote(ctx.cfg)).destroy();
  } else if (idArg !== 'latest') {
    await findLocal(ctx.cfg, idArg);
  }
}

interface Plan {
  roots: Map<string, string>;
  entries: Entry[];
  files: number;
  bytes: number;
}

async function withSnapshot(ctx: JobContext, idArg: string, opts: RestoreOptions, fn: (snap: ResolvedSnapshot, plan: Plan) => Promise<number>): Promise<number> {
  const { cfg, out } = ctx;
  const snap = await resolveSnapshot(cfg, idArg, opts.from);
  try {
    // Made (if missing) only now, under the lock, once the snapshot is known to exist.
    if (opts.target !== undefined) opts = { ...opts, target: await resolveTarget(opts.target, out, !opts.dryRun) };
    const sources = selectSources(snap.manifest, snap.entries, opts.only);
    checkEntries(snap.entries, snap.id);
    const roots = new Map<string, string>();
    for (const s of sources) {
      const configured = cfg.BACKUP_SOURCES.find((c) => c.name === s)?.path;
      const root = opts.target ? join(opts.target, s) : configured;
      if (!root) {
        // Only the redacted env copy (configs is not a source): nothing of the live tree to put back.
        const onlyGenerated = snap.entries.every((e) => e.s !== s || e.t !== 'f' || e.generated);
        if (onlyGenerated && !opts.only) {
          out.info(`${s}: holds only the redacted env copy (not a source here); not restored. It is in the snapshot at ${s}/envs/.env.backup`);
          continue;
        }
        throw new UsageError(`source "${s}" of snapshot ${snap.id} has no path in BACKUP_SOURCES; restore it with --target DIR`);
      }
      if (await overlap(cfg.BACKUP_ROOT, root)) throw new UsageError(`restoring ${s} to ${root} would write into BACKUP_ROOT; use --target`);
      checkRoot(s, root, opts.target);
      roots.set(s, root);
    }
    const entries = snap.entries.filter((e) => roots.has(e.s));
    const files = entries.filter((e) => e.t === 'f');
    return await fn(snap, { roots, entries, files: files.length, bytes: files.reduce((n, e) => n + (e.size ?? 0), 0) });
  } finally {
    snap.remote?.destroy();
  }
}

// ---- writing relative to open folders ------------------------------------------------------

const at = (dirFd: number, name: Buffer | string) => Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), Buffer.from(name)]);
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** Removes whatever `name` is in the open folder (a folder recursively); never follows a symlink. */
function removeAt(dirFd: number, name: Buffer): void {
  const p = at(dirFd, name);
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) rmSync(p, { recursive: true, force: true });
  else unlinkSync(p);
}

/** Opens folder `name` inside an open folder, making it (or replacing a non-folder there) first. */
function openDirAt(dirFd: number, name: Buffer): number {
  const p = at(dirFd, name);
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) unlinkSync(p); // a symlink or file where the snapshot has a folder
  if (!st || !st.isDirectory()) mkdirSync(p, { mode: 0o700 });
  return openSync(p, DIR_FLAGS);
}

/** Opens (or makes) the source's folder inside its open parent; anything else there is refused, as checkRoot said before the lock. */
function openRootAt(parentFd: number, source: string, root: string): number {
  const name = Buffer.from(basename(root));
  const p = at(parentFd, name);
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new UsageError(`restoring ${source}: ${root} is ${kindName(st)}, not a folder; nothing was followed or written there: move it away`);
  if (!st) mkdirSync(p, { mode: 0o700 });
  return openSync(p, DIR_FLAGS);
}

/** Puts `tmp` in place of `name` in an open folder, replacing a file, symlink or folder there. */
function replaceAt(dirFd: number, tmp: string, name: Buffer): void {
  try {
    renameSync(at(dirFd, tmp), at(dirFd, name));
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
    removeAt(dirFd, name);
    renameSync(at(dirFd, tmp), at(dirFd, name));
  }
}

function setTimes(fd: number, e: Entry): void {
  const t = nsToSeconds(e.mtimeNs !== undefined ? BigInt(e.mtimeNs) : BigInt(e.mtime) * 1_000_000n);
  futimesSync(fd, t, t);
}

/**
 * The open folders along the current path: entries come in walk order, so a folder is left once.
 * A folder left may still have downloads in flight into it: its descriptor then stays open (and
 * its mode and times wait) until they end.
 */
class FolderStack {
  private stack: { name: string; fd: number; entry?: Entry }[] = [];
  constructor(
    private readonly rootFd: number,
    private readonly onLeave: (fd: number, entry: Entry | undefined) => void,
  ) {}

  /** The open folder for these path parts (made as needed). */
  enter(parts: Buffer[], dirEntries: Map<string, Entry>, source: string): number {
    let keep = 0;
    while (keep < this.stack.length && keep < parts.length && this.stack[keep]!.name === latin1(parts[keep]!)) keep++;
    this.leave(keep);
    for (let i = keep; i < parts.length; i++) {
      const parent = i === 0 ? this.rootFd : this.stack[i - 1]!.fd;
      const fd = openDirAt(parent, parts[i]!);
      const key = `${source}/${parts
        .slice(0, i + 1)
        .map(latin1)
        .join('/')}`;
      this.stack.push({ name: latin1(parts[i]!), fd, entry: dirEntries.get(key) });
    }
    return parts.length === 0 ? this.rootFd : this.stack[parts.length - 1]!.fd;
  }

  /** Leaves folders down to `depth`; onLeave owns each folder's descriptor from then on (it closes it). */
  leave(depth = 0): void {
    while (this.stack.length > depth) {
      const top = this.stack.pop()!;
      this.onLeave(top.fd, top.entry);
    }
  }
}

function splitPath(raw: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i === raw.length || raw[i] === 0x2f) {
      if (i > start) parts.push(raw.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/** Copies the stored file into `outFd` and hashes the same bytes. */
function copyLocal(file: Buffer, outFd: number): string {
  const src = openSync(file, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    if (!fstatSync(src).isFile()) throw new L2Error(`${file.toString('utf8')} in the snapshot is not a regular file`);
    const h = newHash();
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      for (let done = 0; done < n; ) done += writeSync(outFd, buf, done, n - done, pos + done);
      pos += n;
    }
    return h.digest('hex');
  } finally {
    closeSync(src);
  }
}

async function writeAll(ctx: JobContext, snap: ResolvedSnapshot, plan: Plan): Promise<number> {
  const { out } = ctx;
  const started = Date.now();
  const progress = await out.progress(`restoring ${snap.id}`);
  const mismatches: string[] = [];
  let done = 0;
  let doneBytes = 0;
  const show = (e: Entry) => JSON.stringify(`${e.s}/${e.p}`).slice(1, -1);
  // Remote files download in parallel (BACKUP_DOWNLOAD_CONCURRENCY), each still hash-checked
  // before its rename; the walk itself (folders, symlinks) stays in order and fd-relative.
  const concurrency = snap.remote?.settings.downloadConcurrency ?? 1;
  const downloads = snap.origin === 'remote' ? new TaskPool(concurrency) : undefined;
  const partSlots = new Slots(concurrency);
  for (const [source, root] of plan.roots) {
    await ensureDir(dirname(root));
    const entries = plan.entries.filter((e) => e.s === source).sort((a, b) => comparePaths(entryPath(a), entryPath(b)));
    const dirEntries = new Map(entries.filter((e) => e.t === 'd').map((e) => [`${source}/${latin1(entryPath(e))}`, e]));
    // The parent is resolved once (the operator's --target or source path); the source folder itself is never followed.
    const parentFd = openSync(await fs.realpath(dirname(root)), DIR_FLAGS);
    let rootFd: number;
    try {
      rootFd = openRootAt(parentFd, source, root);
    } finally {
      closeSync(parentFd);
    }
    // Folder modes and times once their contents are written (writing changes a folder's mtime):
    // at once, or when the downloads still in flight into the folder have ended.
    const inFlight = new Map<number, Promise<void>[]>();
    const settling: Promise<void>[] = [];
    const finish = (fd: number, e: Entry | undefined) => {
      try {
        if (!e) return;
        fchmodSync(fd, e.mode);
        setTimes(fd, e);
      } finally {
        closeSync(fd);
      }
    };
    const folders = new FolderStack(rootFd, (fd, e) => {
      const waits = inFlight.get(fd);
      inFlight.delete(fd);
      if (!waits) return finish(fd, e);
      settling.push(Promise.allSettled(waits).then(() => finish(fd, downloads?.failed ? undefined : e)));
    });
    /** Downloads a remote file into a temp file beside `name`, checks its hash, then renames it into place. */
    const fetchInto = (dirFd: number, name: Buffer, e: Entry) => async () => {
      const tmp = `${RESTORE_TEMP_PREFIX}${randomBytes(6).toString('hex')}`;
      let fd: number | undefined;
      try {
        const got = await downloadObject(snap.remote!, snap.remote!.sourceKey(snap.id, e.s, remoteName(e)), at(dirFd, tmp).toString('latin1'), e.size ?? 0, { partBytes: snap.remote!.settings.multipartBytes, partSlots, signal: ctx.signal });
        fd = openSync(at(dirFd, tmp), C.O_WRONLY | C.O_NOFOLLOW);
        if (got.sha256 !== e.sha256) {
          mismatches.push(show(e));
          closeSync(fd);
          fd = undefined;
          unlinkSync(at(dirFd, tmp));
          out.error(`${show(e)}: content does not match the manifest (sha256 ${got.sha256.slice(0, 12)}…, expected ${e.sha256?.slice(0, 12)}…); left as it was`);
          return;
        }
        fchmodSync(fd, e.mode);
        setTimes(fd, e);
        closeSync(fd);
        fd = undefined;
        replaceAt(dirFd, tmp, name);
      } catch (err) {
        if (fd !== undefined) closeSync(fd);
        try {
          unlinkSync(at(dirFd, tmp));
        } catch {
          // not created, or already renamed
        }
        if (err instanceof L2Error) throw err;
        throw new L2Error(`restoring ${show(e)} failed: ${snap.remote!.describe(err)}`);
      }
      done++;
      doneBytes += e.size ?? 0;
      progress.update(`restoring ${snap.id}: ${done} files, ${formatBytes(doneBytes)} of ${formatBytes(plan.bytes)}`);
    };
    try {
      for (const e of entries) {
        ctx.signal.throwIfAborted();
        const parts = splitPath(entryPath(e));
        if (e.t === 'd') {
          folders.enter(parts, dirEntries, source);
          continue;
        }
        const name = parts[parts.length - 1]!;
        const dirFd = folders.enter(parts.slice(0, -1), dirEntries, source);
        if (downloads && e.t === 'f') {
          if (downloads.failed) break;
          const { ended } = await downloads.start(fetchInto(dirFd, name, e));
          const waits = inFlight.get(dirFd);
          if (waits) waits.push(ended);
          else inFlight.set(dirFd, [ended]);
          continue;
        }
        const tmp = `${RESTORE_TEMP_PREFIX}${randomBytes(6).toString('hex')}`;
        if (e.t === 'l') {
          symlinkSync(entryTarget(e), at(dirFd, tmp));
          replaceAt(dirFd, tmp, name);
          continue;
        }
        let fd: number | undefined;
        try {
          let sha: string;
          if (snap.origin === 'local') {
            fd = openSync(at(dirFd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
            sha = copyLocal(Buffer.concat([Buffer.from(join(snap.dir!, e.s) + '/'), entryPath(e)]), fd);
          } else {
            sha = (await snap.remote!.download(snap.remote!.sourceKey(snap.id, e.s, remoteName(e)), at(dirFd, tmp).toString('latin1'), ctx.signal)).sha256;
            fd = openSync(at(dirFd, tmp), C.O_WRONLY | C.O_NOFOLLOW);
          }
          if (sha !== e.sha256) {
            mismatches.push(show(e));
            closeSync(fd);
            fd = undefined;
            unlinkSync(at(dirFd, tmp));
            out.error(`${show(e)}: content does not match the manifest (sha256 ${sha.slice(0, 12)}…, expected ${e.sha256?.slice(0, 12)}…); left as it was`);
            continue;
          }
          fchmodSync(fd, e.mode);
          setTimes(fd, e);
          closeSync(fd);
          fd = undefined;
          replaceAt(dirFd, tmp, name);
        } catch (err) {
          if (fd !== undefined) closeSync(fd);
          try {
            unlinkSync(at(dirFd, tmp));
          } catch {
            // not created, or already renamed
          }
          if (err instanceof L2Error) throw err;
          throw new L2Error(`restoring ${show(e)} failed: ${snap.remote ? snap.remote.describe(err) : errorMessage(err)}`);
        }
        done++;
        doneBytes += e.size ?? 0;
        progress.update(`restoring ${snap.id}: ${done} files, ${formatBytes(doneBytes)} of ${formatBytes(plan.bytes)}`);
      }
      folders.leave();
      await downloads?.drain();
      await Promise.all(settling);
      const top = dirEntries.get(`${source}/`);
      if (top) {
        fchmodSync(rootFd, top.mode);
        setTimes(rootFd, top);
      }
    } finally {
      folders.leave();
      await downloads?.drain().catch(() => {});
      await Promise.allSettled(settling);
      closeSync(rootFd);
    }
  }
  const summary = `restored snapshot ${snap.id} (${snap.origin}): ${done} files, ${formatBytes(doneBytes)} into ${[...plan.roots.values()].join(', ')} in ${formatDuration(Date.now() - started)}`;
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
