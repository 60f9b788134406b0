/**
 * Snapshot manifests. The summary (`.l2-manifest.json`) holds kind, times, host, tool version,
 * per-source results, totals and the sha256 of the file list; the list (`.l2-files.jsonl.gz`, gzip)
 * holds one entry per file (path, size, mtime, mode, sha256), directory and symlink. JSONL so
 * that 100,000 entries stream in and out without holding a giant JSON document.
 *
 * Names are stored losslessly (list format 2): `p` is the name as UTF-8 text (JSON escapes a
 * newline, a backslash or a control byte), and a name whose bytes are not valid UTF-8 also
 * carries `pb`, its raw bytes in base64; `p` is then only for display. The same for symlink
 * targets (`target`, `tb`). Lists of format 1 (no `pb`, no ns times) read as before.
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream, promises as fs } from 'node:fs';
import { createInterface } from 'node:readline';
import type * as Zlib from 'node:zlib';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { L2Error } from '../errors.js';
import { newHash, sha256 } from './hash.js';
import { FILES, MANIFEST, type SnapshotKind } from './layout.js';

/**
 * node:zlib, loaded when a file list is read or written: `l2backup status` (a light command,
 * scripts/bundle.mjs) includes this module but never needs zlib, ~8 M instructions of start-up.
 */
const zlib = (): typeof Zlib => process.getBuiltinModule('node:zlib');
const gzipAsync = (text: string): Promise<Buffer> => (promisify(zlib().gzip) as (text: string) => Promise<Buffer>)(text);

export type EntryType = 'f' | 'd' | 'l';

export interface Entry {
  /** source name */
  s: string;
  /** path relative to the source, '/'-separated; '' is the source folder itself */
  p: string;
  t: EntryType;
  mode: number;
  /** ms since epoch (integer) */
  mtime: number;
  /** raw bytes of the path, base64, when they are not valid UTF-8 (then `p` is for display only) */
  pb?: string;
  /** mtime in ns since epoch (decimal string; list format 2) */
  mtimeNs?: string;
  /** ctime in ns since epoch and inode number of the source file when it was read (list format 2) */
  ctimeNs?: string;
  ino?: string;
  size?: number;
  sha256?: string;
  /** symlink target */
  target?: string;
  /** raw bytes of the symlink target, base64, when they are not valid UTF-8 */
  tb?: string;
  /** the file changed while it was read: what is stored is what was read and hashed */
  changed?: boolean;
  /** written by l2ops (the redacted env copy), not read from the source */
  generated?: boolean;
}

export type SourceStatus = 'ok' | 'missing' | 'unreadable' | 'partial';

export interface SourceResult {
  name: string;
  path: string;
  status: SourceStatus;
  error?: string;
  files: number;
  bytes: number;
}

export interface Totals {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** bytes copied (not hard-linked from the previous snapshot) */
  newBytes: number;
  linkedFiles: number;
  copiedFiles: number;
  changedDuringBackup: number;
  skipped: number;
}

export interface Manifest {
  format: 1;
  id: string;
  kind: SnapshotKind;
  startedAt: string;
  finishedAt: string;
  host: string;
  tool: string;
  /** the snapshot unchanged files were linked from */
  base: string | null;
  sources: SourceResult[];
  totals: Totals;
  warnings: string[];
  /** sha256 of the file list's uncompressed text */
  filesSha256: string;
  entries: number;
  /** 2: names lossless (`pb`), ns times, entries in walk order. Absent: format 1. */
  listFormat?: 2;
}

export function emptyTotals(): Totals {
  return { files: 0, dirs: 0, symlinks: 0, bytes: 0, newBytes: 0, linkedFiles: 0, copiedFiles: 0, changedDuringBackup: 0, skipped: 0 };
}

export function isManifest(v: unknown): v is Manifest {
  const m = v as Manifest;
  return Boolean(m && typeof m === 'object' && m.format === 1 && typeof m.id === 'string' && Array.isArray(m.sources) && m.totals && typeof m.filesSha256 === 'string');
}

export function parseManifest(text: string, where: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (!isManifest(v)) throw new L2Error(`manifest ${where} is corrupt or not an l2ops manifest; run 'l2backup verify' on the other snapshots and consider deleting this one`);
  return v;
}

export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    throw new L2Error(`manifest ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseManifest(text, path);
}

export function isEntry(v: unknown): v is Entry {
  const e = v as Entry;
  return Boolean(e && typeof e.s === 'string' && typeof e.p === 'string' && (e.t === 'f' || e.t === 'd' || e.t === 'l'));
}

/** One line of a file list; a bad line is an error naming the list and the line. */
export function parseEntryLine(line: string, where: string, n: number): Entry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    v = undefined;
  }
  if (!isEntry(v)) throw new L2Error(`file list ${where} line ${n} is corrupt; this snapshot cannot be trusted (run 'l2backup verify')`);
  return v;
}

/** Streams the entries of a (gzipped) file list. */
export async function* readEntries(path: string): AsyncGenerator<Entry> {
  const source = createReadStream(path);
  const gunzip = zlib().createGunzip();
  // pipe() does not forward errors: a missing or unreadable list must end the loop, not the process.
  source.on('error', (err) => gunzip.destroy(err));
  const rl = createInterface({ input: source.pipe(gunzip).setEncoding('utf8'), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (line !== '') yield parseEntryLine(line, path, n);
    }
  } catch (err) {
    if (err instanceof L2Error) throw err;
    throw new L2Error(`file list ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'corrupt'}); this snapshot cannot be trusted (run 'l2backup verify')`);
  }
}

export function parseEntries(text: string, where: string): Entry[] {
  const out: Entry[] = [];
  text.split('\n').forEach((line, i) => {
    if (line !== '') out.push(parseEntryLine(line, where, i + 1));
  });
  return out;
}

export async function readAllEntries(dir: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of readEntries(join(dir, FILES))) out.push(e);
  return out;
}

export const entryKey = (s: string, p: string) => `${s}\0${p}`;

/** A key that tells apart names differing only in non-UTF-8 bytes (latin1 maps bytes 1:1). */
export const entryBytesKey = (e: Pick<Entry, 's' | 'p' | 'pb'>) => `${e.s}\0${entryPath(e).toString('latin1')}`;

/** `p` (and `pb` when the bytes are not UTF-8) for a raw name. */
export function encodeName(raw: Buffer): { p: string; pb?: string } {
  const p = raw.toString('utf8');
  return isUtf8(raw) ? { p } : { p, pb: raw.toString('base64') };
}

/** The exact bytes of an entry's path relative to its source. */
export function entryPath(e: Pick<Entry, 'p' | 'pb'>): Buffer {
  return e.pb !== undefined ? Buffer.from(e.pb, 'base64') : Buffer.from(e.p, 'utf8');
}

/**
 * The name of an entry's object under `snapshots/<id>/<source>/`. S3 keys are UTF-8, so a name
 * that is not valid UTF-8 cannot be its own key: its bytes >= 0x80 and `%` are written as `%XX`,
 * and a suffix made from the raw bytes' hash keeps two such names (and any real name) apart.
 * `l2backup restore --from remote` maps it back to the raw bytes through the file list.
 */
export function remoteName(e: Pick<Entry, 'p' | 'pb'>): string {
  if (e.pb === undefined) return e.p;
  const raw = Buffer.from(e.pb, 'base64');
  let text = '';
  for (const b of raw) text += b >= 0x80 || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return `${text}~l2raw-${sha256(raw).slice(0, 12)}`;
}

/** The exact bytes of a symlink entry's target. */
export function entryTarget(e: Pick<Entry, 'target' | 'tb'>): Buffer {
  return e.tb !== undefined ? Buffer.from(e.tb, 'base64') : Buffer.from(e.target ?? '', 'utf8');
}

/** Walk order: component by component, bytewise ('/' sorts before every other byte). */
export function comparePaths(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] === 0x2f ? -1 : a[i]!;
    const y = b[i] === 0x2f ? -1 : b[i]!;
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

/** Entry paths must stay inside their source: no absolute paths, no '..', no empty parts, no NUL. */
export function safeRelative(p: string | Buffer): boolean {
  const raw = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
  if (raw.length === 0) return true;
  if (raw.includes(0)) return false;
  return raw
    .toString('latin1')
    .split('/')
    .every((part) => part !== '' && part !== '.' && part !== '..');
}

/**
 * Writes a file list: JSON lines, gzipped in batches (a gzip file may hold many members, and
 * the list stays streamed), hashing the uncompressed text for the manifest. `add` is
 * synchronous: each batch is compressed in libuv's thread pool (on another core) and written in
 * order while the walk goes on; it hands back a promise only when two batches are still in
 * flight, so memory stays bounded.
 */
export class FileListWriter {
  private lines: string[] = [];
  private pending = 0;
  private readonly hash = newHash();
  /** the batches compressed or written so far, in order; never rejects (the first error is kept) */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private failure: { err: unknown } | undefined;
  entries = 0;

  private constructor(private readonly fh: fs.FileHandle) {}

  static async create(path: string): Promise<FileListWriter> {
    return new FileListWriter(await fs.open(path, 'wx', 0o600));
  }

  add(e: Entry): void | Promise<void> {
    const line = JSON.stringify(e) + '\n';
    this.lines.push(line);
    this.pending += line.length;
    this.entries++;
    // About 1 MiB of text per gzip member: few zlib set-ups, memory bounded.
    if (this.pending >= 1 << 20) return this.flush();
  }

  private flush(): void | Promise<void> {
    if (this.failure) throw this.failure.err;
    if (this.lines.length === 0) return;
    const text = this.lines.join('');
    this.lines = [];
    this.pending = 0;
    this.hash.update(text);
    const compressed = gzipAsync(text);
    compressed.catch(() => {}); // awaited in order below
    this.inFlight++;
    this.tail = this.tail.then(async () => {
      try {
        if (!this.failure) await this.fh.write(await compressed);
      } catch (err) {
        this.failure ??= { err };
      } finally {
        this.inFlight--;
      }
    });
    if (this.inFlight >= 2) return this.tail.then(() => this.check());
  }

  private check(): void {
    if (this.failure) throw this.failure.err;
  }

  /** Flushes and closes; returns the sha256 of the uncompressed list. */
  async finish(): Promise<string> {
    await this.flush();
    await this.tail;
    this.check();
    await this.fh.close();
    return this.hash.digest('hex');
  }

  async abandon(): Promise<void> {
    await this.tail;
    await this.fh.close().catch(() => {});
  }
}
