/**
 * The decide stage's view of the previous snapshot: its file list streamed in walk order and
 * merge-joined with the walk, one source at a time, so memory stays flat whatever the size of
 * the tree (the list is never held whole).
 *
 * The list is checked against its manifest's sha256 before anything is linked from it (one
 * streamed pass, no parsing): a damaged list costs the run its links, never a wrong link.
 * Lists of format 2 are in walk order (comparePaths) with each source's entries in one run; the
 * only later entries of a source are the generated env copy, which is never linked. Lists of
 * format 1 carry no such promise: a source's entries are read whole and sorted (old snapshots,
 * one nightly after the upgrade).
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { L2Error } from '../errors.js';
import { newHash } from './hash.js';
import { FILES } from './layout.js';
import { comparePaths, entryPath, parseEntryLine, readManifest, type Entry, type Manifest } from './manifest.js';
import { Beneath } from './walk.js';

/** A regular file of the previous snapshot that an unchanged source file may be linked to. */
export interface Prev {
  size: number;
  mode: number;
  mtime: number;
  mtimeNs?: string;
  ctimeNs?: string;
  ino?: string;
  sha256: string;
  /**
   * The base copy's path: whole when it fits in PATH_MAX, else reached folder by folder (a file
   * deeper than PATH_MAX links too). Valid until the next call on this source's cursor: use it
   * at once, synchronously. Throws when unreachable.
   */
  file: () => Buffer;
}

/** Lines of a gzipped text file, streamed a chunk's worth at a time. */
async function* gzLines(path: string): AsyncGenerator<string[]> {
  const source = createReadStream(path, { highWaterMark: 1 << 16 });
  const gunzip = createGunzip();
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip).setEncoding('utf8');
  let rest = '';
  for await (const chunk of gunzip as AsyncIterable<string>) {
    const text = rest + chunk;
    const lines: string[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      lines.push(text.slice(start, nl));
      start = nl + 1;
    }
    rest = text.slice(start);
    yield lines;
  }
  if (rest !== '') yield [rest];
}

/** The uncompressed list's sha256, streamed. */
async function listSha256(path: string): Promise<string> {
  const h = newHash();
  const source = createReadStream(path, { highWaterMark: 1 << 16 });
  const gunzip = createGunzip();
  source.on('error', (err) => gunzip.destroy(err));
  for await (const chunk of source.pipe(gunzip) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest('hex');
}

/** A file entry that may be linked: hashed, sized, read whole, read from the source. */
const linkable = (e: Entry) => e.t === 'f' && e.sha256 !== undefined && e.size !== undefined && !e.changed && !e.generated;

export class BaseList {
  private constructor(
    readonly id: string,
    private readonly dir: string,
    private readonly manifest: Manifest,
  ) {}

  /** Opens the previous snapshot's list, after checking it against its manifest. Throws when it is unusable. */
  static async open(id: string, dir: string): Promise<BaseList> {
    const manifest = await readManifest(dir);
    const sha = await listSha256(join(dir, FILES));
    if (sha !== manifest.filesSha256) throw new L2Error(`its file list does not match its manifest (damaged)`);
    return new BaseList(id, dir, manifest);
  }

  /** A cursor over one source's linkable files, to be asked in walk order. */
  source(name: string, warn: (m: string) => void): BaseCursor {
    const prefix = `{"s":${JSON.stringify(name)},`;
    const path = join(this.dir, FILES);
    const inWalkOrder = this.manifest.listFormat === 2;
    const folders = new BaseFolders(join(this.dir, name));
    const toPrev = (e: Entry, raw: Buffer): Prev => ({ size: e.size!, mode: e.mode, mtime: e.mtime, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino, sha256: e.sha256!, file: () => folders.path(raw) });
    /** Batches of entries (one per chunk of the list), so the join awaits once a batch, not once a file. */
    async function* entries(): AsyncGenerator<Item[]> {
      let n = 0;
      let seen = false;
      const sorted: { raw: Buffer; e: Entry }[] = [];
      for await (const lines of gzLines(path)) {
        const batch: Item[] = [];
        for (const line of lines) {
          n++;
          if (line === '') continue;
          // Most lines start with the source name (entries are written {s, p, ...}): others are skipped unparsed.
          const ours = line.startsWith(prefix);
          if (!ours && line.startsWith('{"s":')) {
            if (seen && inWalkOrder) {
              yield batch; // this source's run is over
              return;
            }
            continue;
          }
          const e = parseEntryLine(line, path, n);
          if (e.s !== name) continue;
          seen = true;
          if (!linkable(e)) continue;
          const raw = entryPath(e);
          if (inWalkOrder) batch.push({ raw, prev: toPrev(e, raw) });
          else sorted.push({ raw, e });
        }
        if (batch.length > 0) yield batch;
      }
      sorted.sort((a, b) => comparePaths(a.raw, b.raw));
      if (sorted.length > 0) yield sorted.map((s) => ({ raw: s.raw, prev: toPrev(s.e, s.raw) }));
    }
    return new BaseCursor(entries(), folders, (err) => warn(`previous snapshot ${this.id}: ${err instanceof Error ? err.message : String(err)}; the rest of the source ${name} is copied, not linked`));
  }
}

/** Linux's PATH_MAX, the terminating NUL included. */
const PATH_MAX = 4096;

/**
 * Paths into the base snapshot's folder of one source. A whole path costs one lookup; one too
 * long for PATH_MAX goes through open folders (opened when first needed, kept along the walk).
 */
class BaseFolders {
  private beneath: Beneath | undefined;
  private readonly prefix: Buffer;
  constructor(private readonly root: string) {
    this.prefix = Buffer.from(root + '/');
  }

  path(rel: Buffer): Buffer {
    if (this.prefix.length + rel.length < PATH_MAX) return Buffer.concat([this.prefix, rel]);
    this.beneath ??= new Beneath(this.root);
    return this.beneath.path(rel);
  }

  close(): void {
    this.beneath?.close();
    this.beneath = undefined;
  }
}

interface Item {
  raw: Buffer;
  prev: Prev;
}

/** Merge-join of a stream of base entries (in walk order) with the walk's files. */
export class BaseCursor {
  private batch: Item[] = [];
  private at = 0;
  private done = false;
  private last: Buffer | undefined;

  constructor(
    private readonly it: AsyncGenerator<Item[]>,
    private readonly folders: BaseFolders,
    private readonly onError: (err: unknown) => void,
  ) {}

  private async refill(): Promise<void> {
    try {
      const r = await this.it.next();
      this.batch = r.done ? [] : r.value;
      this.at = 0;
      if (r.done) this.done = true;
    } catch (err) {
      this.done = true;
      this.batch = [];
      this.onError(err);
    }
  }

  /**
   * The base entry for `rel`; calls must come in walk order (comparePaths ascending). Answers
   * at once while the current batch lasts (a promise only when the next batch must be read).
   */
  find(rel: Buffer): Prev | undefined | Promise<Prev | undefined> {
    for (;;) {
      if (this.at >= this.batch.length) {
        if (this.done) return undefined;
        return this.refill().then(() => this.find(rel));
      }
      const head = this.batch[this.at]!;
      // Out of walk order (not in a list this tool wrote): skipped, so the join never stalls.
      if (this.last && comparePaths(head.raw, this.last) <= 0) {
        this.at++;
        continue;
      }
      const c = comparePaths(head.raw, rel);
      if (c > 0) return undefined;
      this.last = head.raw;
      this.at++;
      if (c === 0) return head.prev;
    }
  }

  async close(): Promise<void> {
    this.done = true;
    this.folders.close();
    await this.it.return(undefined).catch(() => {});
  }
}
