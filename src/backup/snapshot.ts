/**
 * Builds one snapshot: a full, browsable tree of every source under a hidden temp folder,
 * renamed into place only when complete. Files unchanged since the previous complete snapshot
 * (same size, mtime and mode) are hard-linked from it (rsnapshot's idea), so each snapshot is
 * a full tree that `cp -r` restores, yet costs only the changed bytes.
 */
import { promises as fs, constants as C, openSync, readFileSync, fstatSync, closeSync, writeSync, fchmodSync, futimesSync, lstatSync, linkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { hostname } from 'node:os';
import { join, dirname } from 'node:path';
import { L2Error, errnoCode, errorMessage } from '../errors.js';
import { ensureDir } from '../state/files.js';
import type { NamedPath } from '../config/parsers.js';
import { walkSource, type WalkProblem } from './walk.js';
import { redactEnv } from './envcopy.js';
import { FILES, MANIFEST, PRE_RESTORE_DIR, type SnapshotKind } from './layout.js';
import { emptyTotals, entryKey, readEntries, type Entry, type Manifest, type SourceResult, type Totals } from './manifest.js';

export const TOOL = 'l2ops 0.1.0';
const SMALL_FILE = 1 << 20;
const CONCURRENCY = 8;

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

interface Prev {
  size: number;
  mtime: number;
  mode: number;
  sha256: string;
}

async function loadBase(dir: string): Promise<Map<string, Prev>> {
  const map = new Map<string, Prev>();
  for await (const e of readEntries(join(dir, FILES))) {
    if (e.t === 'f' && e.sha256 && e.size !== undefined && !e.changed && !e.generated) map.set(entryKey(e.s, e.p), { size: e.size, mtime: e.mtime, mode: e.mode, sha256: e.sha256 });
  }
  return map;
}

/** Reads `src` once, hashing what is written to `dest`; reports whether the file changed meanwhile. */
/**
 * Small files are copied with synchronous calls: a thread-pool round trip per syscall costs more
 * than the copy itself (bench/backup.mjs: 20,000 logs). Mode and times are set on the open
 * descriptor. Returns what was read and hashed, and whether the file changed meanwhile.
 */
function copySmallSync(src: string, dest: string, before: { size: number; mtimeMs: number; atimeMs: number; mode: number }): { sha256: string; size: number; changed: boolean } {
  const input = openSync(src, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const data = readFileSync(input);
    const after = fstatSync(input);
    const output = openSync(dest, 'w', 0o600);
    try {
      writeSync(output, data);
      fchmodSync(output, before.mode);
      futimesSync(output, new Date(before.atimeMs), new Date(before.mtimeMs));
    } finally {
      closeSync(output);
    }
    const changed = after.size !== data.length || after.mtimeMs !== before.mtimeMs || data.length !== before.size;
    return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length, changed };
  } finally {
    closeSync(input);
  }
}

/**
 * Large files: the kernel copies (copy_file_range, or a reflink where the filesystem can), then
 * the stored copy is hashed, so the hash is of exactly the bytes stored. The source's size and
 * mtime before and after tell whether it changed meanwhile.
 */
async function copyAndHash(src: string, dest: string, before: { size: number; mtimeMs: number }): Promise<{ sha256: string; size: number; changed: boolean }> {
  await fs.copyFile(src, dest);
  const after = await fs.lstat(src);
  const hash = createHash('sha256');
  let size = 0;
  const fh = await fs.open(dest, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  const changed = after.size !== size || after.mtimeMs !== before.mtimeMs || size !== before.size;
  return { sha256: hash.digest('hex'), size, changed };
}

export async function buildSnapshot(opts: SnapshotOptions): Promise<SnapshotResult> {
  const startedAt = new Date().toISOString();
  const parent = opts.kind === 'emergency-pre-restore' ? join(opts.root, PRE_RESTORE_DIR) : opts.root;
  await ensureDir(parent);
  const tmp = join(parent, `.tmp-${opts.id}-${process.pid}`);
  const finalDir = join(parent, opts.id);
  await fs.mkdir(tmp, { mode: 0o700 });
  try {
    const result = await fill(opts, tmp, startedAt);
    // The rename is the commit point: before it the snapshot is invisible to `ls -t /backups/`.
    opts.signal.throwIfAborted();
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, finalDir);
    return { ...result, dir: finalDir };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (errnoCode(err) === 'ENOSPC') throw new L2Error(`the backups volume ${opts.root} is full: snapshot ${opts.id} was abandoned and removed; free space (l2backup prune) or grow the volume`);
    if (errnoCode(err) === 'EDQUOT') throw new L2Error(`disk quota exceeded on ${opts.root}: snapshot ${opts.id} was abandoned and removed`);
    throw err;
  }
}

async function fill(opts: SnapshotOptions, tmp: string, startedAt: string): Promise<Omit<SnapshotResult, 'dir'>> {
  let base = new Map<string, Prev>();
  if (opts.base) {
    try {
      base = await loadBase(opts.base.dir);
    } catch (err) {
      // A damaged previous snapshot only costs this run its links: copy everything.
      opts.warn(`previous snapshot ${opts.base.id} is unusable as a base (${errorMessage(err)}); copying every file`);
      opts = { ...opts, base: undefined };
    }
  }
  const totals: Totals = emptyTotals();
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.warn(m);
  };
  const list = await fs.open(join(tmp, FILES), 'wx', 0o600);
  const listHash = createHash('sha256');
  let entries = 0;
  let pendingLines: string[] = [];
  const flushList = async () => {
    if (pendingLines.length === 0) return;
    const text = pendingLines.join('');
    pendingLines = [];
    listHash.update(text);
    // One gzip member per batch: a gzip file may hold many, and the list stays streamed.
    await list.write(gzipSync(text));
  };
  const record = async (e: Entry) => {
    pendingLines.push(JSON.stringify(e) + '\n');
    entries++;
    if (pendingLines.length >= 512) await flushList();
  };
  const dirTimes: { path: string; mtime: number; mode: number }[] = [];
  const sources: SourceResult[] = [];
  const inFlight = new Set<Promise<void>>();
  let firstError: unknown;

  try {
    for (const src of opts.sources) {
      const res: SourceResult = { name: src.name, path: src.path, status: 'ok', files: 0, bytes: 0 };
      sources.push(res);
      let top;
      try {
        top = await fs.stat(src.path);
        if (!top.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
        await fs.access(src.path, C.R_OK | C.X_OK);
      } catch (err) {
        const code = errnoCode(err);
        res.status = code === 'ENOENT' ? 'missing' : 'unreadable';
        res.error = code === 'ENOENT' ? `${src.path} does not exist` : `${src.path} cannot be read (${code})`;
        warn(`source ${src.name}: ${res.error}; the other sources are backed up`);
        continue;
      }
      const destRoot = join(tmp, src.name);
      await fs.mkdir(destRoot, { mode: 0o700 });
      dirTimes.push({ path: destRoot, mtime: Math.floor(top.mtimeMs), mode: top.mode & 0o7777 });
      await record({ s: src.name, p: '', t: 'd', mode: top.mode & 0o7777, mtime: Math.floor(top.mtimeMs) });
      totals.dirs++;
      const problems: WalkProblem[] = [];

      const handleFile = async (rel: string, abs: string, dest: string, st: import('node:fs').Stats) => {
        const mode = st.mode & 0o7777;
        const mtime = Math.floor(st.mtimeMs);
        const prev = base.get(entryKey(src.name, rel));
        if (prev && opts.base && prev.size === st.size && prev.mtime === mtime && prev.mode === mode) {
          try {
            linkSync(join(opts.base.dir, src.name, rel), dest);
            totals.linkedFiles++;
            totals.files++;
            totals.bytes += st.size;
            res.files++;
            res.bytes += st.size;
            await record({ s: src.name, p: rel, t: 'f', mode, mtime, size: st.size, sha256: prev.sha256 });
            return;
          } catch (err) {
            // EXDEV, EMLINK, a vanished base file...: fall back to a copy.
            if (errnoCode(err) === 'ENOSPC') throw err;
          }
        }
        let copy;
        let seen = { size: st.size, mtimeMs: st.mtimeMs };
        const copyOnce = (at: { size: number; mtimeMs: number }) =>
          at.size < SMALL_FILE ? Promise.resolve(copySmallSync(abs, dest, { ...at, atimeMs: st.atimeMs, mode })) : copyAndHash(abs, dest, at);
        try {
          copy = await copyOnce(seen);
          if (copy.changed) {
            const again = await fs.lstat(abs);
            seen = { size: again.size, mtimeMs: again.mtimeMs };
            copy = await copyOnce(seen);
          }
        } catch (err) {
          const code = errnoCode(err);
          if (code === 'ENOENT') {
            warn(`source ${src.name}: ${rel} vanished during the backup; skipped`);
            await fs.rm(dest, { force: true });
            totals.skipped++;
            return;
          }
          if (code === 'EACCES' || code === 'EPERM' || code === 'ELOOP') {
            warn(`source ${src.name}: ${rel} cannot be read (${code}); skipped`);
            await fs.rm(dest, { force: true });
            res.status = 'partial';
            totals.skipped++;
            return;
          }
          throw err;
        }
        const finalMtime = Math.floor(seen.mtimeMs);
        if (seen.size >= SMALL_FILE || copy.size >= SMALL_FILE) {
          await fs.chmod(dest, mode);
          await fs.utimes(dest, new Date(st.atimeMs), new Date(seen.mtimeMs));
        }
        if (copy.changed) {
          totals.changedDuringBackup++;
          warn(`source ${src.name}: ${rel} changed during backup; stored what was read (sha256 ${copy.sha256.slice(0, 12)}…)`);
        }
        totals.copiedFiles++;
        totals.files++;
        totals.bytes += copy.size;
        totals.newBytes += copy.size;
        res.files++;
        res.bytes += copy.size;
        await record({ s: src.name, p: rel, t: 'f', mode, mtime: finalMtime, size: copy.size, sha256: copy.sha256, ...(copy.changed ? { changed: true } : {}) });
      };

      for await (const rel of await walkSource(src.path, opts.exclude, problems)) {
        opts.signal.throwIfAborted();
        if (firstError) throw firstError;
        if (opts.envFile && src.name === 'configs' && rel === 'envs/.env.backup') continue; // superseded by the fresh redacted copy
        const abs = join(src.path, rel);
        const dest = join(destRoot, rel);
        let st;
        try {
          st = lstatSync(abs);
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') {
            warn(`source ${src.name}: ${rel} vanished during the backup; skipped`);
            totals.skipped++;
            continue;
          }
          throw err;
        }
        if (st.isDirectory()) {
          await fs.mkdir(dest, { mode: 0o700 });
          dirTimes.push({ path: dest, mtime: Math.floor(st.mtimeMs), mode: st.mode & 0o7777 });
          await record({ s: src.name, p: rel, t: 'd', mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs) });
          totals.dirs++;
        } else if (st.isSymbolicLink()) {
          const target = await fs.readlink(abs);
          await fs.symlink(target, dest);
          await fs.lutimes(dest, st.atime, st.mtime).catch(() => {});
          await record({ s: src.name, p: rel, t: 'l', mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs), target });
          totals.symlinks++;
        } else if (st.isFile()) {
          const p = handleFile(rel, abs, dest, st).then(
            () => {
              opts.onProgress?.(totals.files, totals.bytes);
            },
            (err) => {
              firstError ??= err;
            },
          );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
          if (inFlight.size >= CONCURRENCY) await Promise.race(inFlight);
        } else {
          const what = st.isSocket() ? 'socket' : st.isFIFO() ? 'fifo' : 'device';
          warn(`source ${src.name}: ${rel} is a ${what}; skipped (only files, folders and symlinks are backed up)`);
          totals.skipped++;
        }
      }
      await Promise.all(inFlight);
      if (firstError) throw firstError;
      for (const p of problems) {
        if (p.path === src.path && p.code === 'ENOENT') continue;
        // A folder removed during the backup (rotated logs) is churn, not a missing part.
        if (p.code !== 'ENOENT') res.status = 'partial';
        warn(`source ${src.name}: folder ${p.path} ${p.code === 'ENOENT' ? 'vanished during the backup' : `cannot be read (${p.code})`}; skipped`);
      }
    }

    if (opts.envFile) await addEnvCopy(opts, tmp, record, totals, dirTimes);
    await Promise.all(inFlight);
    if (firstError) throw firstError;
    await flushList();
    await list.sync();
  } finally {
    await Promise.allSettled([...inFlight]);
    await list.close();
  }

  // Directory times last (writing into a folder changes its mtime), deepest first.
  for (const d of dirTimes.reverse()) {
    await fs.chmod(d.path, d.mode | 0o700);
    await fs.utimes(d.path, new Date(d.mtime), new Date(d.mtime));
  }

  const partial = sources.some((s) => s.status !== 'ok');
  const manifest: Manifest = {
    format: 1,
    id: opts.id,
    kind: opts.kind,
    startedAt,
    finishedAt: new Date().toISOString(),
    host: hostname(),
    tool: TOOL,
    base: opts.base?.id ?? null,
    sources,
    totals,
    warnings,
    filesSha256: listHash.digest('hex'),
    entries,
  };
  const mf = await fs.open(join(tmp, MANIFEST), 'wx', 0o600);
  await mf.writeFile(JSON.stringify(manifest, null, 2) + '\n');
  await mf.sync();
  await mf.close();
  return { manifest, partial };
}

async function addEnvCopy(opts: SnapshotOptions, tmp: string, record: (e: Entry) => Promise<void>, totals: Totals, dirTimes: { path: string; mtime: number; mode: number }[]): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(opts.envFile!, 'utf8');
  } catch (err) {
    opts.warn(`env file ${opts.envFile} not copied into the snapshot: ${errorMessage(err)}`);
    return;
  }
  const redacted = Buffer.from(redactEnv(text, opts.secrets));
  const rel = 'envs/.env.backup';
  const configs = join(tmp, 'configs');
  for (const [dir, p] of [
    [configs, ''],
    [join(configs, 'envs'), 'envs'],
  ] as const) {
    try {
      await fs.mkdir(dir, { mode: 0o700 });
      const now = Date.now();
      dirTimes.push({ path: dir, mtime: now, mode: 0o755 });
      await record({ s: 'configs', p, t: 'd', mode: 0o755, mtime: now });
      totals.dirs++;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
  }
  const dest = join(configs, rel);
  await fs.rm(dest, { force: true });
  await ensureDir(dirname(dest));
  await fs.writeFile(dest, redacted, { mode: 0o600 });
  const st = await fs.stat(dest);
  await record({ s: 'configs', p: rel, t: 'f', mode: 0o600, mtime: Math.floor(st.mtimeMs), size: redacted.length, sha256: createHash('sha256').update(redacted).digest('hex'), generated: true });
  totals.files++;
  totals.bytes += redacted.length;
  totals.newBytes += redacted.length;
}
