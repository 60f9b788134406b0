/**
 * Builds one snapshot: a full, browsable tree of every source under a hidden temp folder,
 * renamed into place only when complete and durable. Files unchanged since the previous
 * complete snapshot are hard-linked from it (rsnapshot's idea), so each snapshot is a full tree
 * that `cp -r` restores, yet costs only the changed bytes.
 *
 * A pipeline of small stages (after restic's archiver):
 *   walk (walk.ts) -> decide (link, check or copy) -> save (save.ts) -> file list, in walk order
 *   -> publish (publish.ts: durable, rename, fsync the parent).
 */
import { promises as fs, constants as C, lstatSync, linkSync, readlinkSync, symlinkSync, mkdirSync, openSync, writeSync, closeSync, fchmodSync, futimesSync, type BigIntStats } from 'node:fs';
import { hostname } from 'node:os';
import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import { overlap } from './realpath.js';
import { L2Error, UsageError, errnoCode, errorMessage } from '../errors.js';
import { ensureDir } from '../state/files.js';
import type { NamedPath } from '../config/parsers.js';
import { atFd, Beneath, compileExcludes, removeTree, walk, type WalkEntry } from './walk.js';
import { saveFile, nsToSeconds, type Candidate, type SaveResult } from './save.js';
import { publishDir } from './publish.js';
import { sha256 } from './hash.js';
import { redactEnv } from './envcopy.js';
import { FILES, MANIFEST, PRE_RESTORE_DIR, RESTORE_TEMP_PREFIX, type SnapshotKind } from './layout.js';
import { FileListWriter, emptyTotals, encodeName, type Entry, type Manifest, type SourceResult, type Totals } from './manifest.js';
import { BaseList, type BaseCursor, type Prev } from './base-list.js';

export const TOOL = 'l2ops 0.1.0';
const CONCURRENCY = 8;
/** Bytes the walk reads (or links) between two turns of the event loop, at most about this plus one file. */
const YIELD_BYTES = 32 << 20;

/**
 * Lets signals and I/O in: two turns of the event loop. One alone is not enough when the walk
 * runs from the check phase (after an earlier setImmediate): the next check phase then comes
 * before any poll, where a signal's handler runs.
 */
async function letIn(): Promise<void> {
  await new Promise(setImmediate);
  await new Promise(setImmediate);
}
const ENV_COPY = 'envs/.env.backup';
/** Where the env copy goes when ENV_COPY cannot be used; a source file of that name is kept, the copy takes -2, -3... */
const ENV_COPY_ASIDE = '.env.backup.redacted';

export interface SnapshotOptions {
  root: string;
  id: string;
  kind: SnapshotKind;
  sources: NamedPath[];
  exclude: string[];
  /** previous complete snapshot to link unchanged files from */
  base?: { id: string; dir: string };
  /** env file to store redacted at configs/envs/.env.backup */
  envFile?: string;
  secrets: string[];
  signal: AbortSignal;
  onProgress?: (files: number, bytes: number) => void;
  warn: (message: string) => void;
}

export interface SnapshotResult {
  manifest: Manifest;
  dir: string;
  partial: boolean;
}

/**
 * Sources and BACKUP_ROOT must not contain each other, judged by real paths and by folder
 * identity (dev, inode), so a symlink, '..' or a bind mount cannot make a snapshot swallow
 * the earlier ones.
 */
export async function checkSourcesOutsideRoot(root: string, sources: NamedPath[]): Promise<void> {
  for (const src of sources) {
    const how = await overlap(root, src.path);
    if (!how) continue;
    const where = how === 'inside' ? 'the source lies inside BACKUP_ROOT' : 'BACKUP_ROOT lies inside the source';
    throw new UsageError(`source ${src.name} (${src.path}) and BACKUP_ROOT (${root}) overlap once symlinks and mounts are followed: ${where}; every snapshot would swallow the earlier ones. Point them at separate folders`);
  }
}

export async function buildSnapshot(opts: SnapshotOptions): Promise<SnapshotResult> {
  const startedAt = new Date().toISOString();
  const parent = opts.kind === 'emergency-pre-restore' ? join(opts.root, PRE_RESTORE_DIR) : opts.root;
  await ensureDir(parent);
  await checkSourcesOutsideRoot(opts.root, opts.sources);
  const tmp = join(parent, `.tmp-${opts.id}-${process.pid}`);
  const finalDir = join(parent, opts.id);
  await fs.mkdir(tmp, { mode: 0o700 });
  try {
    const result = await fill(opts, tmp, startedAt);
    // The rename is the commit point: before it the snapshot is invisible to `ls -t /backups/`.
    opts.signal.throwIfAborted();
    await fs.chmod(tmp, 0o755);
    await publishDir(tmp, finalDir);
    return { ...result, dir: finalDir };
  } catch (err) {
    try {
      removeTree(tmp); // through open folders: a tree deeper than PATH_MAX goes too
    } catch {
      // best effort: a later run's cleanLeftovers removes what is left
    }
    if (errnoCode(err) === 'ENOSPC') throw new L2Error(`the backups volume ${opts.root} is full: snapshot ${opts.id} was abandoned and removed; free space (l2backup prune) or grow the volume`);
    if (errnoCode(err) === 'EDQUOT') throw new L2Error(`disk quota exceeded on ${opts.root}: snapshot ${opts.id} was abandoned and removed`);
    throw err;
  }
}

// ---- decide -------------------------------------------------------------------------------

type Decision = { action: 'link'; prev: Prev } | { action: 'check'; prev: Prev } | { action: 'copy' };

/**
 * Unchanged, as restic's fileChanged decides: size, mtime (ns), ctime and inode all match.
 * Same size and mtime with a new inode or ctime (a restored file, `cp -p`, `rsync -a`): the
 * bytes are read and compared with the base copy's hash first. Anything else is copied.
 */
export function decide(prev: Prev | undefined, st: BigIntStats, times: Times = timesOf(st)): Decision {
  if (!prev || prev.size !== Number(st.size)) return { action: 'copy' };
  const mode = Number(st.mode & 0o7777n);
  if (prev.mtimeNs === times.mtimeNs && prev.ctimeNs === times.ctimeNs && prev.ino === times.ino && prev.mode === mode) return { action: 'link', prev };
  // Times set through utimes() (restore) carry a double's precision, then libuv cuts them to
  // whole microseconds: a restored time can read up to just under 2 us off the recorded one.
  const sameTime = prev.mtimeNs !== undefined ? absDiff(BigInt(prev.mtimeNs), st.mtimeNs) < 2000n : prev.mtime === times.mtime;
  return sameTime ? { action: 'check', prev } : { action: 'copy' };
}

const absDiff = (a: bigint, b: bigint) => (a > b ? a - b : b - a);

/** A base copy is linked only while it still is what its file list says: a regular file of the recorded size. */
function baseIntact(prev: Prev): boolean {
  try {
    const st = lstatSync(prev.file(), { throwIfNoEntry: false });
    return st !== undefined && st.isFile() && st.size === prev.size;
  } catch {
    return false;
  }
}

// ---- the pipeline -------------------------------------------------------------------------

/**
 * Hands results on in the order they were pushed, with up to `limit` tasks in flight. A plain
 * result with nothing waiting ahead of it is handed on at once, without a promise: an unchanged
 * file (a link) costs no await. `push` answers with a promise only when the caller must wait.
 */
class OrderedPool<T> {
  private queue: { done: boolean; value?: T; task?: Promise<T> }[] = [];
  constructor(
    private readonly limit: number,
    private readonly emit: (v: T) => void | Promise<void>,
  ) {}

  push(v: T | Promise<T>): void | Promise<void> {
    let wait = this.emitSettled();
    if (v instanceof Promise) {
      const slot: { done: boolean; value?: T; task?: Promise<T> } = { done: false, task: v };
      // A rejection is awaited in order (emitHead, drain); this only marks a result as ready.
      v.then(
        (r) => {
          slot.done = true;
          slot.value = r;
        },
        () => {},
      );
      this.queue.push(slot);
      if (this.queue.length >= this.limit) return this.emitHead(wait);
    } else if (this.queue.length === 0) {
      wait = this.emit(v) ?? wait;
    } else {
      this.queue.push({ done: true, value: v });
    }
    return wait;
  }

  /** Hands on the results at the head that are ready, synchronously. */
  private emitSettled(): void | Promise<void> {
    let wait: void | Promise<void> = undefined;
    while (this.queue.length > 0 && this.queue[0]!.done) wait = this.emit(this.queue.shift()!.value as T) ?? wait;
    return wait;
  }

  private async emitHead(wait: void | Promise<void>): Promise<void> {
    await wait;
    while (this.queue.length >= this.limit) {
      const slot = this.queue.shift()!;
      await this.emit(slot.done ? (slot.value as T) : await slot.task!);
    }
    await this.emitSettled();
  }

  async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const slot = this.queue.shift()!;
      await this.emit(slot.done ? (slot.value as T) : await slot.task!);
    }
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.queue.map((s) => s.task));
    this.queue = [];
  }
}

interface Times {
  mtime: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

function timesOf(st: BigIntStats): Times {
  return { mtime: Math.floor(Number(st.mtimeNs / 1_000_000n)), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), ino: String(st.ino) };
}

interface Run {
  opts: SnapshotOptions;
  tmp: string;
  base: BaseList | undefined;
  totals: Totals;
  warn: (m: string) => void;
  dirTimes: { path: Buffer; st: { mode: bigint; mtimeNs: bigint } }[];
  /** bytes of sources read so far (copied, or hashed to compare with the base copy) */
  readBytes: number;
}

async function fill(opts: SnapshotOptions, tmp: string, startedAt: string): Promise<Omit<SnapshotResult, 'dir'>> {
  let base: BaseList | undefined;
  if (opts.base) {
    try {
      base = await BaseList.open(opts.base.id, opts.base.dir);
    } catch (err) {
      // A damaged previous snapshot only costs this run its links: copy everything.
      opts.warn(`previous snapshot ${opts.base.id} is unusable as a base (${errorMessage(err)}); copying every file`);
    }
  }
  const warnings: string[] = [];
  const run: Run = {
    opts,
    tmp,
    base,
    totals: emptyTotals(),
    dirTimes: [],
    readBytes: 0,
    warn: (m) => {
      warnings.push(m);
      opts.warn(m);
    },
  };
  const list = await FileListWriter.create(join(tmp, FILES));
  const sources: SourceResult[] = [];
  let filesSha256: string;
  try {
    for (const src of opts.sources) sources.push(await snapshotSource(run, src, list));
    if (opts.envFile) await addEnvCopy(run, list);
    filesSha256 = await list.finish();
  } catch (err) {
    await list.abandon();
    throw err;
  }

  // Folder times last (writing into a folder changes its mtime), deepest first; each folder is
  // reached through its open parents, so one deeper than PATH_MAX under the temp prefix too.
  const folders = new Beneath(tmp);
  try {
    for (const d of run.dirTimes.reverse()) {
      const fd = folders.dir(d.path.subarray(Buffer.byteLength(tmp) + 1));
      fchmodSync(fd, Number(d.st.mode & 0o7777n) | 0o700);
      const t = nsToSeconds(d.st.mtimeNs);
      futimesSync(fd, t, t);
    }
  } finally {
    folders.close();
  }

  const partial = sources.some((s) => s.status !== 'ok');
  const manifest: Manifest = {
    format: 1,
    listFormat: 2,
    id: opts.id,
    kind: opts.kind,
    startedAt,
    finishedAt: new Date().toISOString(),
    host: hostname(),
    tool: TOOL,
    base: base ? base.id : null,
    sources,
    totals: run.totals,
    warnings,
    filesSha256,
    entries: list.entries,
  };
  const mf = await fs.open(join(tmp, MANIFEST), 'wx', 0o600);
  await mf.writeFile(JSON.stringify(manifest, null, 2) + '\n');
  await mf.close();
  return { manifest, partial };
}

async function snapshotSource(run: Run, src: NamedPath, list: FileListWriter): Promise<SourceResult> {
  const { opts, totals, warn } = run;
  const res: SourceResult = { name: src.name, path: src.path, status: 'ok', files: 0, bytes: 0 };
  let real: string;
  try {
    real = await fs.realpath(src.path);
    if (!(await fs.stat(real)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    await fs.access(real, C.R_OK | C.X_OK);
  } catch (err) {
    const code = errnoCode(err);
    res.status = code === 'ENOENT' ? 'missing' : 'unreadable';
    res.error = code === 'ENOENT' ? `${src.path} does not exist` : `${src.path} cannot be read (${code})`;
    warn(`source ${src.name}: ${res.error}; the other sources are backed up`);
    return res;
  }
  const destRoot = Buffer.from(join(run.tmp, src.name));
  const rootSt = await fs.stat(opts.root, { bigint: true });
  // No patterns: no exclude callback, so the walk makes no string of each path for it.
  const exclude = opts.exclude.some((p) => p.trim() !== '') ? compileExcludes(opts.exclude) : undefined;
  const show = (rel: Buffer) => JSON.stringify(rel.toString('utf8')).slice(1, -1);
  let sinceProgress = 0;
  const pool = new OrderedPool<Entry | undefined>(CONCURRENCY, (e) => {
    if (!e) return;
    const wait = list.add(e);
    // Progress is shown every few seconds at most: formatting it once a file is wasted work.
    if (e.t === 'f' && (sinceProgress++ & 63) === 0) opts.onProgress?.(totals.files, totals.bytes);
    return wait;
  });
  const fileOf = (ev: WalkEntry, times: Times): Omit<Entry, 't'> => {
    const p = ev.rel.toString('utf8');
    const mode = Number(ev.st.mode & 0o7777n);
    // Same keys in the same order as ever (`s` first: base-list.ts skips other sources' lines by it).
    if (isUtf8(ev.rel)) return { s: src.name, p, mode, mtime: times.mtime, mtimeNs: times.mtimeNs, ctimeNs: times.ctimeNs, ino: times.ino };
    return { s: src.name, p, pb: ev.rel.toString('base64'), mode, mtime: times.mtime, mtimeNs: times.mtimeNs, ctimeNs: times.ctimeNs, ino: times.ino };
  };
  /** The open folders of the temp tree along the walk's current path (root first), with their /proc/self/fd/N/ prefix. */
  const destDirs: { rel: Buffer; fd: number; at: Buffer }[] = [];
  const baseFiles: BaseCursor | undefined = run.base?.source(src.name, warn);
  let sinceYield = 0;
  let yieldAtBytes = run.readBytes + YIELD_BYTES;
  try {
    const events = walk(real, {
      exclude,
      skipDir: (st, rel) => {
        if (st.dev === rootSt.dev && st.ino === rootSt.ino) throw new UsageError(`source ${src.name}: ${show(rel)} is BACKUP_ROOT (${opts.root}) mounted inside the source; every snapshot would swallow the earlier ones. Exclude it or move BACKUP_ROOT`);
        return false;
      },
    });
    for (const ev of events) {
      opts.signal.throwIfAborted();
      // Unchanged and small files never await: let signals (a stopping container) and I/O in
      // every 1,024 entries, and every YIELD_BYTES read (1,024 small files copied synchronously
      // are up to 1 GiB: seconds on a busy disk before SIGTERM could be seen).
      if (++sinceYield >= 1024 || run.readBytes >= yieldAtBytes) {
        sinceYield = 0;
        yieldAtBytes = run.readBytes + YIELD_BYTES;
        await letIn();
        opts.signal.throwIfAborted();
      }
      if (ev.type === 'problem') {
        // A folder or file removed during the backup (rotated logs) is churn, not a missing part.
        // So is a folder swapped for a symlink (or another folder) since it was listed: never followed.
        const churn = ev.code === 'ENOENT' || ev.code === 'ECHANGED';
        if (!churn) res.status = 'partial';
        const what = ev.dir ? 'folder ' : '';
        const why = ev.code === 'ENOENT' ? 'vanished during the backup' : ev.code === 'ECHANGED' ? 'changed type during the backup (not followed)' : `cannot be read (${ev.code})`;
        warn(`source ${src.name}: ${what}${show(ev.rel)} ${why}; skipped`);
        if (!ev.dir) totals.skipped++;
        continue;
      }
      // The copy is made relative to its open parent folder in the temp tree, so a path legal in
      // the source never exceeds PATH_MAX under the longer BACKUP_ROOT/.tmp-*/ prefix.
      const slash = ev.rel.lastIndexOf(0x2f);
      const parentRel = ev.rel.subarray(0, Math.max(0, slash));
      while (destDirs.length > 1 && !destDirs[destDirs.length - 1]!.rel.equals(parentRel)) closeSync(destDirs.pop()!.fd);
      const dest = ev.rel.length === 0 ? destRoot : Buffer.concat([destDirs[destDirs.length - 1]!.at, ev.rel.subarray(slash + 1)]);
      if (ev.rel[slash + 1] === 0x2e && ev.rel.subarray(slash + 1).toString('latin1').startsWith(RESTORE_TEMP_PREFIX)) {
        warn(`source ${src.name}: ${show(ev.rel)} is a leftover of an interrupted restore; not backed up (delete it)`);
        continue;
      }
      if (opts.envFile && src.name === 'configs' && ev.rel.toString('utf8') === ENV_COPY) continue; // superseded by the fresh redacted copy
      const times = timesOf(ev.st);
      let wait: void | Promise<void> = undefined;
      if (ev.kind === 'd') {
        mkdirSync(dest, { mode: 0o700 });
        const fd = openSync(dest, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
        destDirs.push({ rel: ev.rel, fd, at: atFd(fd, Buffer.alloc(0)) });
        run.dirTimes.push({ path: ev.rel.length === 0 ? destRoot : Buffer.concat([destRoot, Buffer.from('/'), ev.rel]), st: ev.st });
        const e = fileOf(ev, times) as Entry;
        e.t = 'd';
        wait = pool.push(e);
        totals.dirs++;
      } else if (ev.kind === 'l') {
        wait = pool.push(saveSymlink(run, src.name, ev, dest, fileOf(ev, times)));
      } else if (ev.kind === 'f') {
        const found = baseFiles?.find(ev.rel);
        const prev = found instanceof Promise ? await found : found;
        const entry = fileOf(ev, times);
        const decision = decide(prev, ev.st, times);
        // Unchanged (the common case): linked here, synchronously, and handed on without a promise.
        const linked = decision.action === 'link' ? linkBase(run, res, entry, decision.prev, dest) : undefined;
        wait = pool.push(linked ?? saveRegular(run, res, ev, dest, entry, decision));
      } else {
        const what = ev.st.isSocket() ? 'socket' : ev.st.isFIFO() ? 'fifo' : 'device';
        warn(`source ${src.name}: ${show(ev.rel)} is a ${what}; skipped (only files, folders and symlinks are backed up)`);
        totals.skipped++;
      }
      if (wait) await wait;
    }
    await pool.drain();
  } catch (err) {
    await pool.settle();
    throw err;
  } finally {
    for (const d of destDirs) closeSync(d.fd);
    await baseFiles?.close();
  }
  return res;
}

function saveSymlink(run: Run, source: string, ev: WalkEntry, dest: Buffer, base: Omit<Entry, 't'>): Entry | undefined {
  let target: Buffer;
  try {
    target = readlinkSync(ev.abs, { encoding: 'buffer' });
  } catch (err) {
    // Gone or no longer a symlink since the walk saw it: churn, as a vanished file.
    run.warn(`source ${source}: symlink ${base.p} changed or vanished during the backup; skipped`);
    run.totals.skipped++;
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'EINVAL') return undefined;
    throw err;
  }
  symlinkSync(target, dest);
  const t = encodeName(target);
  run.totals.symlinks++;
  return { ...base, t: 'l', target: t.p, ...(t.pb !== undefined ? { tb: t.pb } : {}) };
}

/**
 * Links the base copy of an unchanged file into the snapshot, only while it still is what its
 * file list says (a regular file of the recorded size). Undefined: not linked, copy instead.
 */
function linkBase(run: Run, res: SourceResult, entry: Omit<Entry, 't'>, prev: Prev, dest: Buffer): Entry | undefined {
  const { totals } = run;
  if (!baseIntact(prev)) {
    run.warn(`source ${res.name}: the base copy of ${entry.p} no longer matches its file list (damaged?); copied from the source instead`);
    return undefined;
  }
  try {
    linkSync(prev.file(), dest);
  } catch (err) {
    if (errnoCode(err) === 'ENOSPC') throw err;
    return undefined; // EXDEV, EMLINK, a vanished base file...: copy instead
  }
  totals.linkedFiles++;
  totals.files++;
  totals.bytes += prev.size;
  res.files++;
  res.bytes += prev.size;
  const e = entry as Entry;
  e.t = 'f';
  e.size = prev.size;
  e.sha256 = prev.sha256;
  return e;
}

function saveRegular(run: Run, res: SourceResult, ev: WalkEntry, dest: Buffer, entry: Omit<Entry, 't'>, decision: Decision): Entry | undefined | Promise<Entry | undefined> {
  const { totals, warn } = run;
  let candidate: Candidate | undefined;
  if (decision.action === 'check') {
    if (baseIntact(decision.prev)) candidate = decision.prev;
    else warn(`source ${res.name}: the base copy of ${entry.p} no longer matches its file list (damaged?); copied from the source instead`);
  }
  // The link is made while saveFile still holds the source open, before any await: ev.abs and
  // dest name folders through descriptors that are only valid until the walk moves on.
  let linkedEntry: Entry | undefined;
  const linkSame = () => (linkedEntry = decision.action === 'check' ? linkBase(run, res, { ...entry }, decision.prev, dest) : undefined) !== undefined;
  const failed = (err: unknown): undefined => {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ELOOP') {
      // ELOOP: swapped for a symlink since the walk; the link is stored by the next run.
      warn(`source ${res.name}: ${entry.p} ${code === 'ENOENT' ? 'vanished' : 'was replaced by a symlink'} during the backup; skipped`);
      totals.skipped++;
      return undefined;
    }
    if (code === 'EACCES' || code === 'EPERM') {
      warn(`source ${res.name}: ${entry.p} cannot be read (${code}); skipped`);
      res.status = 'partial';
      totals.skipped++;
      return undefined;
    }
    throw err;
  };
  const saved = (saved: SaveResult): Entry | undefined => {
    if (saved.kind === 'changed-type') {
      warn(`source ${res.name}: ${entry.p} changed type during the backup; skipped`);
      totals.skipped++;
      return undefined;
    }
    run.readBytes += saved.kind === 'same-as-base' ? Number(saved.st.size) : saved.size;
    if (saved.kind === 'same-as-base') return { ...linkedEntry!, ...timesOf(saved.st), mode: Number(saved.st.mode & 0o7777n) };
    if (saved.changed) {
      totals.changedDuringBackup++;
      warn(`source ${res.name}: ${entry.p} changed during backup; stored what was read after ${saved.attempts} tries (sha256 ${saved.sha256.slice(0, 12)}…)`);
    }
    totals.copiedFiles++;
    totals.files++;
    totals.bytes += saved.size;
    totals.newBytes += saved.size;
    res.files++;
    res.bytes += saved.size;
    return { ...entry, ...timesOf(saved.st), mode: Number(saved.st.mode & 0o7777n), t: 'f', size: saved.size, sha256: saved.sha256, ...(saved.changed ? { changed: true } : {}) };
  };
  let result: SaveResult | Promise<SaveResult>;
  try {
    result = saveFile(ev.abs, dest, candidate, run.opts.signal, linkSame);
  } catch (err) {
    return failed(err);
  }
  // A small file is saved synchronously: its entry is handed on without a promise.
  return result instanceof Promise ? result.then(saved, failed) : saved(result);
}

/**
 * The redacted env copy, written into the snapshot only: every folder on the way is checked
 * to be a real folder of the temp tree, and the file is created with O_EXCL|O_NOFOLLOW, so a
 * `configs/envs` that is a symlink in the source never leads the write into the live tree.
 */
async function addEnvCopy(run: Run, list: FileListWriter): Promise<void> {
  const { opts } = run;
  let text: string;
  try {
    text = await fs.readFile(opts.envFile!, 'utf8');
  } catch (err) {
    run.warn(`env file ${opts.envFile} not copied into the snapshot: ${errorMessage(err)}`);
    return;
  }
  const redacted = Buffer.from(redactEnv(text, opts.secrets));
  const now = BigInt(Date.now()) * 1_000_000n;
  const dirEntry = (p: string): Entry => ({ s: 'configs', p, t: 'd', mode: 0o755, mtime: Number(now / 1_000_000n), mtimeNs: String(now), generated: true });
  let rel = ENV_COPY;
  for (const p of ['', 'envs']) {
    const dir = join(run.tmp, 'configs', p);
    let st;
    try {
      st = lstatSync(dir);
    } catch {
      mkdirSync(dir, { mode: 0o700 });
      run.dirTimes.push({ path: Buffer.from(dir), st: { mode: 0o755n, mtimeNs: now } });
      await list.add(dirEntry(p));
      run.totals.dirs++;
      continue;
    }
    if (!st.isDirectory()) {
      rel = '';
      break;
    }
  }
  // The copy never replaces a file of the user's: when configs/envs is not a folder (a symlink),
  // or envs/.env.backup is taken, it goes to the first free name of .env.backup.redacted[-N].
  const flags = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
  let fd: number | undefined;
  for (let n = 0; fd === undefined; ) {
    const name = rel === ENV_COPY ? rel : `${ENV_COPY_ASIDE}${++n === 1 ? '' : `-${n}`}`;
    try {
      fd = openSync(join(run.tmp, 'configs', name), flags, 0o600);
      rel = name;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || n >= 100) throw err;
      rel = '';
    }
  }
  if (rel !== ENV_COPY) run.warn(`configs/envs is not a folder in the source (a symlink?) or holds .env.backup already; the redacted env copy is stored as configs/${rel} instead (no file of the source is replaced)`);
  const dest = join(run.tmp, 'configs', rel);
  try {
    writeSync(fd, redacted);
  } finally {
    closeSync(fd);
  }
  const st = lstatSync(dest, { bigint: true });
  await list.add({ s: 'configs', p: rel, t: 'f', mode: 0o600, ...timesOf(st), size: redacted.length, sha256: sha256(redacted), generated: true });
  run.totals.files++;
  run.totals.bytes += redacted.length;
  run.totals.newBytes += redacted.length;
}
