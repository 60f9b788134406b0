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
import { promises as fs, constants as C, openSync, closeSync, lstatSync, mkdirSync, unlinkSync, symlinkSync, fchmodSync, futimesSync, writeSync, open as openCb, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { EXIT, L2Error, UsageError, descriptorHint, errnoCode, errorMessage } from '../errors.js';
import { formatBytes, formatDuration, type Progress } from '../output/index.js';
import { Alerter } from '../alert/index.js';
import { ensureDir } from '../state/files.js';
import { backupLocked, withBackupLock, type JobContext } from './jobs.js';
import { findLocal, openRemote, resolveSnapshot, selectSources, type Origin, type ResolvedSnapshot } from './catalog.js';
import { checkId } from './layout.js';
import { comparePaths, entryPath, entryTarget, remoteName, safeRelative, type Entry } from './manifest.js';
import { at, removeTemp, replaceAt, tempName } from './restore-copy.js';
import { CopyThreads, copyInFlight } from './restore-threads.js';
import { nsToSeconds } from './save.js';
import { overlap } from './realpath.js';
import { downloadObject, downloadParts } from './download.js';
import { TaskPool } from './task-pool.js';
import { sha256 } from './hash.js';
import { makeDurable } from './publish.js';

export interface RestoreOptions {
  only?: string[];
  from: Origin;
  target?: string;
  dryRun: boolean;
  preRestore: boolean;
}

const latin1 = (b: Buffer) => b.toString('latin1');
const openAsync = promisify(openCb);
/** Remote objects up to this size are fetched into memory and written in one go (downloadSmall): at most 64 x 256 KiB held at once. */
const SMALL_OBJECT = 256 * 1024;

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

export interface Plan {
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

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

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

/** An entry's mtime in seconds, as futimes takes it. */
const mtimeSeconds = (e: Entry) => nsToSeconds(e.mtimeNs !== undefined ? BigInt(e.mtimeNs) : BigInt(e.mtime) * 1_000_000n);

function setTimes(fd: number, e: Entry): void {
  const t = mtimeSeconds(e);
  futimesSync(fd, t, t);
}

/** Sets a file's or folder's mode and times from its manifest entry. */
function setModeAndTimes(fd: number, e: Entry): void {
  fchmodSync(fd, e.mode);
  setTimes(fd, e);
}

/**
 * The open folders along the current path: entries come in walk order, so a folder is left once.
 * A folder left may still have files in flight into it: onLeave owns its descriptor from then on.
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

  /** Leaves folders down to `depth`, handing each descriptor to onLeave. */
  leave(depth = 0): void {
    while (this.stack.length > depth) {
      const top = this.stack.pop()!;
      this.onLeave(top.fd, top.entry);
    }
  }
}

/**
 * Sets a folder's mode and times once its contents are in place (writing into a folder changes
 * its mtime): when the walk leaves it, or once the files still in flight into it have landed.
 * The folder stays open until then, so those files are still written relative to it.
 */
class FolderFinisher {
  private readonly inFlight = new Map<number, Promise<void>[]>();
  private readonly settling: Promise<void>[] = [];
  /** Set when the restore stops early: folders are then only closed. */
  stopped = false;

  constructor(private readonly pool: TaskPool) {}

  /** A file task writing into the open folder `dirFd`. */
  track(dirFd: number, ended: Promise<void>): void {
    const waits = this.inFlight.get(dirFd);
    if (waits) waits.push(ended);
    else this.inFlight.set(dirFd, [ended]);
  }

  readonly leave = (fd: number, e: Entry | undefined): void => {
    const waits = this.inFlight.get(fd);
    this.inFlight.delete(fd);
    if (!waits) return this.finish(fd, e);
    this.settling.push(Promise.allSettled(waits).then(() => this.finish(fd, e)));
  };

  /** Waits for the folders still waiting on files; throws if one could not be finished. */
  async done(): Promise<void> {
    await Promise.all(this.settling);
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.settling);
  }

  private finish(fd: number, e: Entry | undefined): void {
    try {
      if (e && !this.stopped && !this.pool.failed) setModeAndTimes(fd, e);
    } finally {
      closeSync(fd);
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

/** Folders from the snapshot's top to the deepest entry (its source's folder counted). */
function maxDepth(entries: Entry[]): number {
  let most = 0;
  for (const e of entries) {
    const raw = entryPath(e);
    let n = 1;
    for (let i = 0; i < raw.length; i++) if (raw[i] === 0x2f) n++;
    if (n > most) most = n;
  }
  return most;
}

const show = (e: Entry) => JSON.stringify(`${e.s}/${e.p}`).slice(1, -1);
/** A file's path inside the snapshot folder, as a latin1 string of its bytes. */
const storedPath = (e: Entry) => `${e.s}/${latin1(entryPath(e))}`;

function placeSymlink(dirFd: number, name: Buffer, e: Entry): void {
  const tmp = tempName();
  symlinkSync(entryTarget(e), at(dirFd, tmp));
  replaceAt(dirFd, tmp, name);
}

/** Opens (or makes) a source's folder; its parent is resolved once, the folder itself is never followed. */
async function openSourceRoot(source: string, root: string): Promise<number> {
  await ensureDir(dirname(root));
  const parentFd = openSync(await fs.realpath(dirname(root)), DIR_FLAGS);
  try {
    return openRootAt(parentFd, source, root);
  } finally {
    closeSync(parentFd);
  }
}

/**
 * What writeAll did, for a caller that reports it itself (the drill): given one, writeAll sends
 * no alert, and an object or stored file that is missing is recorded and the restore goes on.
 */
export interface WriteReport {
  files: number;
  bytes: number;
  mismatches: string[];
  missing: string[];
}

const isMissing = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404 || errnoCode(err) === 'ENOENT';
};

/**
 * One restore: each source's entries are walked in order (folders and symlinks at once), and
 * files go to one TaskPool: local copies to the copy threads (copyInFlight: COPY_IN_FLIGHT at once, fewer for a deep tree under a low open-file limit; see
 * restore-threads.ts), remote downloads BACKUP_DOWNLOAD_CONCURRENCY at once (large objects in
 * ranged parts). Every file lands in a temp file beside its name and is renamed into place only
 * once its sha256 matched.
 */
class RestoreRun {
  readonly mismatches: string[] = [];
  private done = 0;
  private doneBytes = 0;
  private readonly pool: TaskPool;
  /** ranged parts of remote downloads (downloadParts: their bytes held at once are bounded) */
  private readonly parts: ReturnType<typeof downloadParts> | undefined;
  private readonly threads: CopyThreads | undefined;
  private readonly halt = () => this.threads?.halt();

  constructor(
    private readonly ctx: JobContext,
    private readonly snap: ResolvedSnapshot,
    private readonly plan: Plan,
    readonly progressLine: Progress,
    private readonly report: WriteReport | undefined,
  ) {
    const parallel = snap.origin === 'remote' ? snap.remote!.settings.downloadConcurrency : copyInFlight(maxDepth(plan.entries));
    this.pool = new TaskPool(parallel);
    this.parts = snap.origin === 'remote' ? downloadParts(snap.remote!.settings) : undefined;
    this.threads = snap.origin === 'local' ? new CopyThreads(snap.dir!) : undefined;
    ctx.signal.addEventListener('abort', this.halt);
  }

  get files(): number {
    return this.done;
  }

  get bytes(): number {
    return this.doneBytes;
  }

  async close(): Promise<void> {
    this.ctx.signal.removeEventListener('abort', this.halt);
    await this.threads?.close();
  }

  async writeSource(source: string, root: string): Promise<void> {
    const entries = this.plan.entries.filter((e) => e.s === source).sort((a, b) => comparePaths(entryPath(a), entryPath(b)));
    const dirEntries = new Map(entries.filter((e) => e.t === 'd').map((e) => [`${source}/${latin1(entryPath(e))}`, e]));
    const rootFd = await openSourceRoot(source, root);
    const finisher = new FolderFinisher(this.pool);
    const folders = new FolderStack(rootFd, finisher.leave);
    try {
      await this.walk(entries, folders, finisher, dirEntries, source);
      folders.leave();
      await this.pool.drain();
      await finisher.done();
      const top = dirEntries.get(`${source}/`);
      if (top) setModeAndTimes(rootFd, top);
    } catch (err) {
      this.halt(); // files queued in the copy threads are not begun
      throw err;
    } finally {
      finisher.stopped = true;
      await this.pool.settle(); // no file is still written into a folder closed below
      folders.leave();
      await finisher.settle();
      closeSync(rootFd);
    }
  }

  private async walk(entries: Entry[], folders: FolderStack, finisher: FolderFinisher, dirEntries: Map<string, Entry>, source: string): Promise<void> {
    for (const e of entries) {
      this.ctx.signal.throwIfAborted();
      if (this.pool.failed) return; // drain() throws the failure
      const parts = splitPath(entryPath(e));
      if (e.t === 'd') {
        folders.enter(parts, dirEntries, source);
        continue;
      }
      const dirFd = folders.enter(parts.slice(0, -1), dirEntries, source);
      const name = parts[parts.length - 1]!;
      if (e.t === 'l') {
        placeSymlink(dirFd, name, e);
        continue;
      }
      const { ended } = await this.pool.start(this.fileTask(dirFd, name, e));
      finisher.track(dirFd, ended);
    }
  }

  /** Restores one file (a temp file beside `name`, hash checked, renamed into place); a failure that stops the restore stops the copy threads' queued files too. */
  private fileTask(dirFd: number, name: Buffer, e: Entry): () => Promise<void> {
    return async () => {
      try {
        if (this.threads) await this.copyLocal(this.threads, dirFd, name, e);
        else await this.download(dirFd, name, e);
      } catch (err) {
        const fatal = this.failure(err, e);
        if (fatal) {
          this.halt();
          throw fatal;
        }
      }
    };
  }

  /** A copy thread copies and hashes the stored file in one read, checks the hash and renames the temp file into place. */
  private async copyLocal(threads: CopyThreads, dirFd: number, name: Buffer, e: Entry): Promise<void> {
    const outcome = await threads.copy({ dirFd, name: latin1(name), stored: storedPath(e), sha256: e.sha256 ?? '', mode: e.mode, mtime: mtimeSeconds(e), size: e.size ?? 0 });
    if ('sha' in outcome) this.mismatch(e, outcome.sha);
    else if ('landed' in outcome) this.landed(e);
    // Not begun: the run was interrupted (or another file failed, whose error the pool holds);
    // never counted as done, or a stopped restore would end "every file matched", exit 0.
    else throw this.ctx.signal.aborted ? this.ctx.signal.reason : new L2Error(`${show(e)}: not restored, the restore stopped`);
  }

  /** Downloads an object (ranged parts when large) into a temp file, hashing every byte on its way; then as copyLocal. */
  private async download(dirFd: number, name: Buffer, e: Entry): Promise<void> {
    const remote = this.snap.remote!;
    const key = remote.sourceKey(this.snap.id, e.s, remoteName(e));
    if ((e.size ?? 0) <= SMALL_OBJECT) return this.downloadSmall(dirFd, name, e, key);
    const tmp = tempName();
    try {
      const got = await downloadObject(remote, key, at(dirFd, tmp), e.size ?? 0, { ...this.parts!, signal: this.ctx.signal });
      const fd = openSync(at(dirFd, tmp), C.O_WRONLY | C.O_NOFOLLOW);
      if (got.problem !== undefined || got.sha256 !== e.sha256) {
        closeSync(fd);
        removeTemp(dirFd, tmp);
        return this.mismatch(e, got.sha256, got.problem);
      }
      try {
        setModeAndTimes(fd, e);
      } finally {
        closeSync(fd);
      }
      replaceAt(dirFd, tmp, name);
      this.landed(e);
    } catch (err) {
      removeTemp(dirFd, tmp);
      throw err;
    }
  }

  /**
   * A small object: fetched into memory and hashed there; only when it matched is its temp file
   * made, then written, given mode and times and renamed in one go without an await, so a
   * mismatch or an interruption never leaves a temp file, and no libuv thread hop is paid per step.
   */
  private async downloadSmall(dirFd: number, name: Buffer, e: Entry, key: string): Promise<void> {
    const bytes = await this.snap.remote!.getSmall(key, SMALL_OBJECT, this.ctx.signal);
    const sha = sha256(bytes);
    if (bytes.length !== e.size || sha !== e.sha256) return this.mismatch(e, sha, bytes.length !== e.size ? `${bytes.length > SMALL_OBJECT ? `more than ${bytes.length - 1}` : bytes.length} bytes on the server, the file list says ${e.size}` : undefined);
    const tmp = tempName();
    try {
      // The create is the one slow step on a busy disk: in libuv's pool, not on the main thread.
      const fd = await openAsync(at(dirFd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      try {
        this.ctx.signal.throwIfAborted();
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
        setModeAndTimes(fd, e);
      } finally {
        closeSync(fd);
      }
      replaceAt(dirFd, tmp, name);
    } catch (err) {
      removeTemp(dirFd, tmp);
      throw err;
    }
    this.landed(e);
  }

  /** The file did not match its manifest entry: nothing was put in its place. */
  private mismatch(e: Entry, sha: string, problem?: string): void {
    this.mismatches.push(show(e));
    this.ctx.out.error(`${show(e)}: content does not match the manifest (${problem ?? `sha256 ${sha.slice(0, 12)}…, expected ${e.sha256?.slice(0, 12)}…`}); left as it was`);
  }

  private landed(e: Entry): void {
    const { snap, plan } = this;
    this.done++;
    this.doneBytes += e.size ?? 0;
    if (this.report) Object.assign(this.report, { files: this.done, bytes: this.doneBytes });
    this.progressLine.update(`restoring ${snap.id}: ${this.done} files, ${formatBytes(this.doneBytes)} of ${formatBytes(plan.bytes)}`);
    this.ctx.out.status({ phase: 'restore', snapshot_id: snap.id, files_done: this.done, bytes_done: this.doneBytes, total_files: plan.files, total_bytes: plan.bytes });
  }

  /** The error that stops the restore, or undefined when the drill recorded a missing file and goes on. */
  private failure(err: unknown, e: Entry): L2Error | undefined {
    if (this.report && isMissing(err) && !this.ctx.signal.aborted) {
      this.report.missing.push(show(e));
      this.ctx.out.error(`${show(e)}: missing from the snapshot (${this.snap.origin === 'remote' ? 'no such object' : 'no such file'})`);
      return undefined;
    }
    if (err instanceof L2Error) return err;
    return new L2Error(`restoring ${show(e)} failed: ${this.snap.remote ? this.snap.remote.describe(err) : errorMessage(err)}${descriptorHint(err)}`);
  }
}

export async function writeAll(ctx: JobContext, snap: ResolvedSnapshot, plan: Plan, report?: WriteReport): Promise<number> {
  const started = Date.now();
  const run = new RestoreRun(ctx, snap, plan, await ctx.out.progress(`restoring ${snap.id}`), report);
  const roots = [...plan.roots.values()];
  // A remote restore's files are not fsynced one by one: one syncfs per filesystem, before
  // success is reported, and before a failure or a stop is: the files already put in place
  // replaced the operator's (best effort then, root by root, the first error being the one told).
  const durable = snap.origin === 'remote' && !report;
  try {
    for (const [source, root] of plan.roots) await run.writeSource(source, root);
  } catch (err) {
    try {
      await run.close();
    } finally {
      if (durable) for (const root of roots) await makeRestoreDurable([root]).catch(() => {});
    }
    throw err;
  }
  await run.close();
  if (durable) await makeRestoreDurable(roots);
  const summary = `restored snapshot ${snap.id} (${snap.origin}): ${run.files} files, ${formatBytes(run.bytes)} into ${[...plan.roots.values()].join(', ')} in ${formatDuration(Date.now() - started)}`;
  return report ? concludeDrill(run, summary, report) : concludeRestore(ctx, snap, plan, run, summary);
}

/**
 * Makes what a restore wrote durable before it reports success: one syncfs (`sync -f`) per
 * filesystem the roots and the mount points below them live on (where that is missing, an fsync of every file and folder below
 * each root). The same guarantee as an fsync per file and of each folder, for one call.
 */
export async function makeRestoreDurable(roots: string[]): Promise<void> {
  const seen = new Set<number>();
  const mounts = mountPoints();
  for (const root of roots) {
    // A folder below the root may be another filesystem (a volume mounted there): its files
    // are not in the root's syncfs.
    const real = await fs.realpath(root);
    for (const dir of [real, ...mounts.filter((m) => m.startsWith(real.endsWith('/') ? real : `${real}/`))]) {
      // A mount point that cannot be looked at (another user's, gone since) held nothing we wrote.
      const dev = dir === real ? (await fs.stat(dir)).dev : (await fs.stat(dir).catch(() => undefined))?.dev;
      if (dev === undefined || seen.has(dev)) continue;
      seen.add(dev);
      await makeDurable(dir);
    }
  }
}

/** The mount points this process sees (/proc/self/mountinfo's fifth field, its octal escapes undone). */
function mountPoints(): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const point = line.split(' ')[4];
    if (point) out.push(point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** The drill reports for itself: no alert. */
function concludeDrill(run: RestoreRun, summary: string, report: WriteReport): number {
  const { mismatches } = run;
  report.mismatches.push(...mismatches);
  const progress = run.progressLine;
  if (mismatches.length || report.missing.length) {
    progress.fail(`${summary}; ${mismatches.length} file(s) did not match the manifest, ${report.missing.length} missing`);
    return EXIT.FAILED;
  }
  progress.succeed(`${summary}; every file matched its sha256`);
  return EXIT.OK;
}

async function concludeRestore(ctx: JobContext, snap: ResolvedSnapshot, plan: Plan, run: RestoreRun, summary: string): Promise<number> {
  const { out } = ctx;
  const { mismatches } = run;
  const alerter = new Alerter(ctx.cfg, out, 'l2backup');
  out.addSummary({ snapshot_id: snap.id, origin: snap.origin, files_restored: run.files, bytes_restored: run.bytes, total_files: plan.files, total_bytes: plan.bytes, mismatches: mismatches.length });
  if (mismatches.length) {
    run.progressLine.fail(`${summary}; ${mismatches.length} file(s) did not match the manifest`);
    await alerter.send({ level: 'error', title: 'restore incomplete', message: `${summary}; ${mismatches.length} file(s) failed their hash check: ${mismatches.slice(0, 5).join(', ')}`, key: 'l2backup:restore' });
    return EXIT.FAILED;
  }
  run.progressLine.succeed(`${summary}; every file matched its sha256`);
  await alerter.send({ level: 'info', title: 'restore done', message: summary, key: 'l2backup:restore' });
  return EXIT.OK;
}
