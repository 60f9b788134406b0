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
import { comparePaths, entryPath, isEntry, readManifest, type Entry, type Manifest } from './manifest.js';

/** A regular file of the previous snapshot that an unchanged source file may be linked to. */
export interface Prev {
  size: number;
  mode: number;
  mtime: number;
  mtimeNs?: string;
  ctimeNs?: string;
  ino?: string;
  sha256: string;
  /** path of the base copy */
  file: Buffer;
}

/** Lines of a gzipped text file, streamed (a chunk at a time). */
async function* gzLines(path: string): AsyncGenerator<string> {
  const source = createReadStream(path, { highWaterMark: 1 << 16 });
  const gunzip = createGunzip();
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip).setEncoding('utf8');
  let rest = '';
  for await (const chunk of gunzip as AsyncIterable<string>) {
    const text = rest + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      yield text.slice(start, nl);
      start = nl + 1;
    }
    rest = text.slice(start);
  }
  if (rest !== '') yield rest;
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

function parseLine(line: string, path: string, n: number): Entry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    v = undefined;
  }
  if (!isEntry(v)) throw new L2Error(`file list ${path} line ${n} is corrupt`);
  return v;
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
    const root = Buffer.from(join(this.dir, name) + '/');
    const toPrev = (e: Entry, raw: Buffer): Prev => ({ size: e.size!, mode: e.mode, mtime: e.mtime, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino, sha256: e.sha256!, file: Buffer.concat([root, raw]) });
    async function* entries(): AsyncGenerator<{ raw: Buffer; prev: Prev }> {
      let n = 0;
      let seen = false;
      const sorted: { raw: Buffer; e: Entry }[] = [];
      for await (const line of gzLines(path)) {
        n++;
        if (line === '') continue;
        // Most lines start with the source name (entries are written {s, p, ...}): others are skipped unparsed.
        const ours = line.startsWith(prefix);
        if (!ours && line.startsWith('{"s":')) {
          if (seen && inWalkOrder) return; // this source's run is over
          continue;
        }
        const e = parseLine(line, path, n);
        if (e.s !== name) continue;
        seen = true;
        if (!linkable(e)) continue;
        const raw = entryPath(e);
        if (inWalkOrder) yield { raw, prev: toPrev(e, raw) };
        else sorted.push({ raw, e });
      }
      sorted.sort((a, b) => comparePaths(a.raw, b.raw));
      for (const s of sorted) yield { raw: s.raw, prev: toPrev(s.e, s.raw) };
    }
    return new BaseCursor(entries(), (err) => warn(`previous snapshot ${this.id}: ${err instanceof Error ? err.message : String(err)}; the rest of the source ${name} is copied, not linked`));
  }
}

/** Merge-join of a stream of base entries (in walk order) with the walk's files. */
export class BaseCursor {
  private head: { raw: Buffer; prev: Prev } | undefined;
  private done = false;
  private last: Buffer | undefined;

  constructor(
    private readonly it: AsyncGenerator<{ raw: Buffer; prev: Prev }>,
    private readonly onError: (err: unknown) => void,
  ) {}

  private async next(): Promise<void> {
    try {
      for (;;) {
        const r = await this.it.next();
        if (r.done) {
          this.done = true;
          this.head = undefined;
          return;
        }
        // Out of walk order (not in a list this tool wrote): skipped, so the join never stalls.
        if (this.last && comparePaths(r.value.raw, this.last) <= 0) continue;
        this.last = r.value.raw;
        this.head = r.value;
        return;
      }
    } catch (err) {
      this.done = true;
      this.head = undefined;
      this.onError(err);
    }
  }

  /** The base entry for `rel`; calls must come in walk order (comparePaths ascending). */
  async find(rel: Buffer): Promise<Prev | undefined> {
    for (;;) {
      if (!this.head) {
        if (this.done) return undefined;
        await this.next();
        continue;
      }
      const c = comparePaths(this.head.raw, rel);
      if (c > 0) return undefined;
      const hit = c === 0 ? this.head.prev : undefined;
      this.head = undefined;
      if (hit) return hit;
    }
  }

  async close(): Promise<void> {
    this.done = true;
    await this.it.return(undefined).catch(() => {});
  }
}
