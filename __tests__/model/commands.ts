/**
 * The steps of the model-based test (fast-check commands): changes to the live sources, moves
 * of the clock and of the S3 server's state, and l2backup runs, some killed with SIGKILL.
 * Each step updates the model, then runs the checks.
 */
import fc from 'fast-check';
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, appendFileSync, unlinkSync } from 'node:fs';
import { join as pjoin } from 'node:path';
import { execa } from 'execa';
import { type Tree, B, L, cloneTree, diffTrees, oddName, readTree, show, join } from './tree.js';
import { type Source, type S3Mode, SOURCES, World, stats, classify } from './world.js';
import type { KnownDefect } from './known-defects.js';

type Cmd = fc.AsyncCommand<World, World, false>;

const u8 = (s: string) => L(Buffer.from(s, 'utf8'));
/** Names every backup must keep byte-exact (issue 9 §1): newline, backslash, leading dash, non-UTF-8, ... */
const NAMES = ['a', 'b.txt', 'sp ace', 'new\nline', 'back\\slash', '-dash', '--rf', u8('ü-é.txt'), '\xff\xfe', '\xc3(', '.hidden', '*?[x]', `${'n'.repeat(120)}`];
const DIRS = ['d', 'new\nd', '-d', 'back\\d', '\xe9'];

const validName = (s: string) => s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0');
const nameArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NAMES) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6, min: 1, max: 255 }).map((a) => L(Buffer.from(a))).filter((s) => validName(s)) },
);
const pathArb = fc.oneof({ weight: 3, arbitrary: nameArb }, { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...DIRS), nameArb).map(([d, n]) => `${d}/${n}`) });
const dataArb = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 * 1024 * 1024 }).map((n) => Buffer.alloc(n, n % 251)) },
);
const srcArb = fc.constantFrom<Source>(...SOURCES);
const pickArb = fc.nat(999);

// ------------------------------------------------------------------ helpers on the live tree

function liveOf(w: World, s: Source): Tree {
  return w.live.get(s)!;
}

function pick(t: Tree, n: number, filter: (k: string) => boolean): string | undefined {
  const keys = [...t.keys()].filter(filter).sort();
  return keys.length ? keys[n % keys.length] : undefined;
}

/** Removes whatever is at `key` (and below it) from disk and model. */
function removeAt(w: World, s: Source, key: string): void {
  const t = liveOf(w, s);
  rmSync(join(w.src(s), key), { recursive: true, force: true });
  for (const k of [...t.keys()]) if (k === key || k.startsWith(`${key}/`)) t.delete(k);
}

/** Makes the parent folders of `key` (replacing a file or link in the way). */
function parents(w: World, s: Source, key: string): void {
  const t = liveOf(w, s);
  const parts = key.split('/');
  for (let i = 1; i < parts.length; i++) {
    const up = parts.slice(0, i).join('/');
    const n = t.get(up);
    if (n?.t === 'd') continue;
    if (n) removeAt(w, s, up);
    mkdirSync(join(w.src(s), up));
    t.set(up, { t: 'd' });
  }
}

async function afterStep(w: World, ran: { snapshots?: boolean; remote?: boolean } = {}): Promise<void> {
  stats.steps++;
  w.checkLocal();
  if (ran.snapshots) await w.checkLatest();
  if (ran.remote) await w.checkRemote();
}

const present = (w: World, s: Source) => w.live.get(s) !== undefined;

// ------------------------------------------------------------------ changes to the sources

class Write implements Cmd {
  constructor(readonly s: Source, readonly key: string, readonly data: Buffer) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    parents(w, this.s, this.key);
    const t = liveOf(w, this.s);
    if (t.has(this.key)) removeAt(w, this.s, this.key);
    writeFileSync(join(w.src(this.s), this.key), this.data, { mode: 0o644 });
    chmodSync(join(w.src(this.s), this.key), 0o644);
    t.set(this.key, { t: 'f', data: this.data, mode: 0o644 });
    w.note(`${this}`);
    await afterStep(w);
  }
  toString = () => `write ${this.s}/${show(this.key)} (${this.data.length} B)`;
}

class Append implements Cmd {
  constructor(readonly s: Source, readonly n: number, readonly data: Buffer) {}
  check = (w: Readonly<World>) => present(w as World, this.s) && this.data.length > 0;
  async run(w: World): Promise<void> {
    const t = liveOf(w, this.s);
    const key = pick(t, this.n, (k) => t.get(k)!.t === 'f');
    if (!key) return afterStep(w);
    const node = t.get(key)! as { t: 'f'; data: Buffer; mode: number };
    if (node.mode === 0o444) chmodSync(join(w.src(this.s), key), 0o644);
    appendFileSync(join(w.src(this.s), key), this.data);
    if (node.mode === 0o444) chmodSync(join(w.src(this.s), key), 0o444);
    t.set(key, { t: 'f', data: Buffer.concat([node.data, this.data]), mode: node.mode });
    w.note(`append ${this.data.length} B to ${this.s}/${show(key)}`);
    await afterStep(w);
  }
  toString = () => `append(${this.s}, #${this.n}, ${this.data.length} B)`;
}

/** New content, same size, the old mtime and atime to the nanosecond (what cp -p, rsync -a, tar -x do). */
class RewriteSameSizeAndMtime implements Cmd {
  constructor(readonly s: Source, readonly n: number, readonly flip: number) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    const t = liveOf(w, this.s);
    const key = pick(t, this.n, (k) => t.get(k)!.t === 'f' && (t.get(k) as { data: Buffer }).data.length > 0);
    if (!key) return afterStep(w);
    const node = t.get(key)! as { t: 'f'; data: Buffer; mode: number };
    const data = Buffer.from(node.data.map((b) => b ^ ((this.flip % 255) + 1)));
    // Work under plain names (argv cannot carry every byte of a name), same filesystem, same inode.
    const work = pjoin(w.dir, 'rewrite-work');
    const ref = pjoin(w.dir, 'rewrite-ref');
    renameSync(join(w.src(this.s), key), work);
    writeFileSync(ref, '');
    await execa('touch', ['-r', work, ref]);
    chmodSync(work, 0o644);
    writeFileSync(work, data);
    chmodSync(work, node.mode);
    await execa('touch', ['-r', ref, work]);
    renameSync(work, join(w.src(this.s), key));
    unlinkSync(ref);
    t.set(key, { t: 'f', data, mode: node.mode, sameSizeRewrite: true });
    w.note(`rewrite ${this.s}/${show(key)}: same size, same mtime`);
    await afterStep(w);
  }
  toString = () => `rewriteSameSizeAndMtime(${this.s}, #${this.n})`;
}

class Chmod444 implements Cmd {
  constructor(readonly s: Source, readonly n: number) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    const t = liveOf(w, this.s);
    const key = pick(t, this.n, (k) => t.get(k)!.t === 'f');
    if (!key) return afterStep(w);
    chmodSync(join(w.src(this.s), key), 0o444);
    (t.get(key) as { mode: number }).mode = 0o444;
    w.note(`chmod 0444 ${this.s}/${show(key)}`);
    await afterStep(w);
  }
  toString = () => `chmod0444(${this.s}, #${this.n})`;
}

class Delete implements Cmd {
  constructor(readonly s: Source, readonly n: number) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    const key = pick(liveOf(w, this.s), this.n, () => true);
    if (!key) return afterStep(w);
    removeAt(w, this.s, key);
    w.note(`delete ${this.s}/${show(key)}`);
    await afterStep(w);
  }
  toString = () => `delete(${this.s}, #${this.n})`;
}

class Rename implements Cmd {
  constructor(readonly s: Source, readonly n: number, readonly to: string) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    const t = liveOf(w, this.s);
    const key = pick(t, this.n, (k) => t.get(k)!.t !== 'd' && k !== this.to && !this.to.startsWith(`${k}/`));
    if (!key) return afterStep(w);
    const node = t.get(key)!;
    parents(w, this.s, this.to);
    if (t.has(this.to)) removeAt(w, this.s, this.to);
    renameSync(join(w.src(this.s), key), join(w.src(this.s), this.to));
    t.delete(key);
    t.set(this.to, node);
    w.note(`rename ${this.s}/${show(key)} -> ${show(this.to)}`);
    await afterStep(w);
  }
  toString = () => `rename(${this.s}, #${this.n} -> ${show(this.to)})`;
}

type Kind = 'file' | 'link' | 'folder' | 'link-outside';
/** Replaces an entry by a file, a symlink, a folder, or a symlink to the folder outside every source. */
class Swap implements Cmd {
  constructor(readonly s: Source, readonly n: number, readonly to: Kind) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    const t = liveOf(w, this.s);
    const key = pick(t, this.n, () => true);
    if (!key) return afterStep(w);
    removeAt(w, this.s, key);
    const p = join(w.src(this.s), key);
    if (this.to === 'file') {
      writeFileSync(p, 'swapped in\n', { mode: 0o644 });
      t.set(key, { t: 'f', data: B('swapped in\n'), mode: 0o644 });
    } else if (this.to === 'link' || this.to === 'link-outside') {
      const target = this.to === 'link' ? 'a' : w.outside;
      symlinkSync(target, p);
      t.set(key, { t: 'l', target });
    } else {
      mkdirSync(p);
      writeFileSync(join(w.src(this.s), `${key}/inner`), 'inner\n', { mode: 0o644 });
      t.set(key, { t: 'd' });
      t.set(`${key}/inner`, { t: 'f', data: B('inner\n'), mode: 0o644 });
    }
    w.note(`swap ${this.s}/${show(key)} for a ${this.to}`);
    await afterStep(w);
  }
  toString = () => `swap(${this.s}, #${this.n} -> ${this.to})`;
}

class RemoveSource implements Cmd {
  constructor(readonly s: Source) {}
  check = (w: Readonly<World>) => present(w as World, this.s);
  async run(w: World): Promise<void> {
    const away = pjoin(w.stash, this.s);
    rmSync(away, { recursive: true, force: true });
    renameSync(w.src(this.s), away);
    w.stashed.set(this.s, liveOf(w, this.s));
    w.live.set(this.s, undefined);
    w.note(`remove source ${this.s}`);
    await afterStep(w);
  }
  toString = () => `removeSource(${this.s})`;
}

class RestoreSource implements Cmd {
  constructor(readonly s: Source) {}
  check = (w: Readonly<World>) => (w as World).stashed.has(this.s);
  async run(w: World): Promise<void> {
    rmSync(w.src(this.s), { recursive: true, force: true });
    renameSync(pjoin(w.stash, this.s), w.src(this.s));
    w.live.set(this.s, w.stashed.get(this.s)!);
    w.stashed.delete(this.s);
    w.note(`restore source ${this.s} (its folder is back)`);
    await afterStep(w);
  }
  toString = () => `restoreSource(${this.s})`;
}

// ------------------------------------------------------------------ clock and server

class Clock implements Cmd {
  constructor(readonly days: number) {}
  check = (w: Readonly<World>) => Math.abs(w.clockDays + this.days) <= 40;
  async run(w: World): Promise<void> {
    w.clockDays += this.days;
    w.note(`clock ${this.days > 0 ? '+' : ''}${this.days}d (now ${w.clockDays}d)`);
    await afterStep(w);
  }
  toString = () => `clock(${this.days > 0 ? '+' : ''}${this.days}d)`;
}

class Server implements Cmd {
  constructor(readonly mode: S3Mode) {}
  check = (w: Readonly<World>) => w.s3Mode !== this.mode;
  async run(w: World): Promise<void> {
    await setS3(w, this.mode);
    w.note(`s3 ${this.mode}`);
    await afterStep(w);
  }
  toString = () => `s3(${this.mode})`;
}

export async function setS3(w: World, mode: S3Mode): Promise<void> {
  if (mode === 'down') await w.proxy.refuse();
  else await w.proxy.accept();
  w.proxy.hang = mode === 'hung';
  w.s3Mode = mode;
}

// ------------------------------------------------------------------ l2backup runs

const anyOdd = (w: World) => SOURCES.some((s) => [...(w.live.get(s)?.keys() ?? [])].some(oddName));

class Backup implements Cmd {
  constructor(readonly kind: 'nightly' | 'snapshot') {}
  check = () => true;
  async run(w: World): Promise<void> {
    const all = SOURCES.every((s) => present(w, s));
    const res = await w.job([this.kind], this.kind);
    if (!res.hung) {
      const ok = w.s3Mode === 'up' ? (all ? [0] : [3]) : [1, 3];
      if (!ok.includes(res.exitCode)) w.problem(anyOdd(w) ? 'ODD_NAMES_LOST' : w.s3Mode === 'up' && res.exitCode === 1 && /upload/.test(res.all) ? 'PENDING_UPLOAD_BLOCKS_LATER' : undefined, `${this.kind} exited ${res.exitCode}, expected ${ok.join(' or ')} (sources ${all ? 'all there' : 'not all there'}, s3 ${w.s3Mode}):\n${res.all.slice(-800)}`);
    }
    await afterStep(w, { snapshots: true, remote: true });
  }
  toString = () => this.kind;
}

class PreRestore implements Cmd {
  constructor(readonly upload: boolean) {}
  check = () => true;
  async run(w: World): Promise<void> {
    await w.job(['emergency-pre-restore', ...(this.upload ? ['--upload'] : [])], 'emergency-pre-restore');
    await afterStep(w, { snapshots: true, remote: this.upload });
  }
  toString = () => `emergencyPreRestore(${this.upload ? '--upload' : ''})`;
}

/** Restores a visible snapshot (or 'latest') in place or into a fresh --target. */
class Restore implements Cmd {
  constructor(readonly n: number, readonly latest: boolean, readonly inPlace: boolean, readonly preRestore: boolean, readonly killAfterMs?: number, readonly only = false) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const vis = w.visible();
    const ids = [...vis.keys()].filter((id) => w.expected.has(id) && !w.expected.get(id)!.tainted).sort();
    const want = this.latest ? w.expectedLatest() : ids.length ? ids[this.n % ids.length] : undefined;
    if (!want || w.expected.get(want)?.tainted) return afterStep(w);
    const arg = this.latest ? 'latest' : want;
    const target = pjoin(w.dir, 'targets', `t${stats.runs}`);
    const old = new Map(SOURCES.map((s) => [s, w.live.get(s) && cloneTree(w.live.get(s)!)]));
    // --only the snapshot's sources: also what an operator does when configs/ (the env copy) has no path.
    const names = SOURCES.filter((s) => w.expected.get(want)!.trees.get(s) !== undefined);
    if (this.only && names.length === 0) return afterStep(w);
    const args = ['restore', arg, ...(this.only ? ['--only', names.join(',')] : []), ...(this.inPlace ? [] : ['--target', target]), ...(this.preRestore ? [] : ['--no-pre-restore'])];
    const res = await w.job(args, 'emergency-pre-restore', this.killAfterMs);
    const id = /restored snapshot (\d{8}-\d{6})/.exec(res.all)?.[1] ?? want;
    if (id !== want) w.problem('LATEST_WRONG', `restore latest restored ${id}, expected ${want}`);
    const exp = w.expected.get(id)!;
    if (!w.visible().has(id)) w.problem('RESTORE_DELETES_ITS_SNAPSHOT', `restoring ${id} deleted it`);
    const odd = SOURCES.some((s) => [...(exp.trees.get(s)?.keys() ?? [])].some(oddName));
    // A folder, file or link where the snapshot has another kind, or a link in the live tree.
    const typeSwap = (s: Source) => [...(exp.trees.get(s) ?? new Map()).entries()].some(([k, n]) => old.get(s)?.get(k) !== undefined && old.get(s)!.get(k)!.t !== n.t);
    const liveLink = (s: Source) => [...(old.get(s)?.values() ?? [])].some((n) => n.t === 'l');
    const swap = this.inPlace && SOURCES.some((s) => typeSwap(s) || liveLink(s));
    const noConfigs = /source "configs" of snapshot .* has no path in BACKUP_SOURCES/.test(res.all);
    const why: KnownDefect | undefined = noConfigs ? 'RESTORE_WITHOUT_CONFIGS_SOURCE' : odd ? 'ODD_NAMES_LOST' : swap ? 'RESTORE_TYPE_SWAP_FAILS' : undefined;
    if (res.killed || res.hung) {
      if (this.inPlace) w.adoptAfterKill(id, old);
      else rmSync(target, { recursive: true, force: true });
    } else if (this.inPlace) {
      if (res.exitCode !== 0) {
        w.problem(why, `restore ${arg} in place exited ${res.exitCode}:\n${res.all.slice(-800)}`);
        w.adoptAfterKill(id, old);
      } else w.restoreInModel(id);
    } else {
      const diffs: string[] = [];
      let defect: KnownDefect | undefined;
      for (const s of SOURCES) {
        const t = exp.trees.get(s);
        if (!t) continue;
        const d = diffTrees(t, readTree(pjoin(target, s)), true);
        defect ??= d.length ? classify(d) : undefined;
        diffs.push(...d.map((x) => `${s}: ${x.what}`));
      }
      if (res.exitCode !== 0 || diffs.length) w.problem(defect ?? (odd ? 'ODD_NAMES_LOST' : undefined), `restore ${arg} --target: exit ${res.exitCode}; ${diffs.slice(0, 6).join('; ')}\n${res.exitCode ? res.all.slice(-600) : ''}`);
      rmSync(target, { recursive: true, force: true });
    }
    await afterStep(w, { snapshots: true, remote: false });
  }
  toString = () => `restore(${this.latest ? 'latest' : `#${this.n}`}${this.only ? ', --only its sources' : ''}${this.inPlace ? ', in place' : ', --target'}${this.preRestore ? '' : ', --no-pre-restore'}${this.killAfterMs !== undefined ? `, SIGKILL ${this.killAfterMs} ms after the lock` : ''})`;
}

class Prune implements Cmd {
  check = () => true;
  async run(w: World): Promise<void> {
    const res = await w.run(['prune']);
    if (![0].includes(res.exitCode) && !res.hung) w.problem(undefined, `prune exited ${res.exitCode}:\n${res.all.slice(-600)}`);
    await afterStep(w, { snapshots: true });
  }
  toString = () => 'prune';
}

class Upload implements Cmd {
  check = () => true;
  async run(w: World): Promise<void> {
    const res = await w.run(['upload']);
    if (w.s3Mode === 'up' && !res.hung && res.exitCode !== 0) w.problem(anyOdd(w) ? 'ODD_NAMES_LOST' : 'PENDING_UPLOAD_BLOCKS_LATER', `upload with the server up exited ${res.exitCode}:\n${res.all.slice(-600)}`);
    await afterStep(w, { remote: true });
  }
  toString = () => 'upload';
}

class Verify implements Cmd {
  check = () => true;
  async run(w: World): Promise<void> {
    if (w.visible().size === 0) return afterStep(w);
    const res = await w.run(['verify', '--all']);
    if (res.exitCode !== 0 && !res.hung) {
      const tainted = [...w.visible().keys()].map((id) => w.expected.get(id)?.tainted).find(Boolean) as KnownDefect | undefined;
      w.problem(tainted ?? (anyOdd(w) || [...w.expected.values()].some((e) => SOURCES.some((s) => [...(e.trees.get(s)?.keys() ?? [])].some(oddName))) ? 'ODD_NAMES_LOST' : undefined), `verify --all exited ${res.exitCode}:\n${res.all.slice(-600)}`);
    }
    await afterStep(w);
  }
  toString = () => 'verify --all';
}

class KillBackup implements Cmd {
  constructor(readonly afterMs: number) {}
  check = () => true;
  async run(w: World): Promise<void> {
    await w.job(['nightly'], 'nightly', this.afterMs);
    await afterStep(w, { snapshots: true, remote: true });
  }
  toString = () => `nightly, SIGKILL ${this.afterMs} ms after the lock`;
}

export const commandArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(srcArb, pathArb, dataArb).map(([s, k, d]) => new Write(s, k, d)) },
  { weight: 2, arbitrary: fc.tuple(srcArb, pickArb, fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([s, n, d]) => new Append(s, n, Buffer.from(d))) },
  { weight: 3, arbitrary: fc.tuple(srcArb, pickArb, fc.nat(254)).map(([s, n, f]) => new RewriteSameSizeAndMtime(s, n, f)) },
  { weight: 1, arbitrary: fc.tuple(srcArb, pickArb).map(([s, n]) => new Chmod444(s, n)) },
  { weight: 2, arbitrary: fc.tuple(srcArb, pickArb).map(([s, n]) => new Delete(s, n)) },
  { weight: 2, arbitrary: fc.tuple(srcArb, pickArb, pathArb).map(([s, n, k]) => new Rename(s, n, k)) },
  { weight: 2, arbitrary: fc.tuple(srcArb, pickArb, fc.constantFrom<Kind>('file', 'link', 'folder', 'link-outside')).map(([s, n, k]) => new Swap(s, n, k)) },
  { weight: 1, arbitrary: srcArb.map((s) => new RemoveSource(s)) },
  { weight: 1, arbitrary: srcArb.map((s) => new RestoreSource(s)) },
  { weight: 2, arbitrary: fc.constantFrom(-3, -1, 1, 2, 4, 8).map((d) => new Clock(d)) },
  { weight: 2, arbitrary: fc.constantFrom<S3Mode>('up', 'up', 'down', 'hung').map((m) => new Server(m)) },
  { weight: 5, arbitrary: fc.constantFrom<'nightly' | 'snapshot'>('nightly', 'nightly', 'snapshot').map((k) => new Backup(k)) },
  { weight: 1, arbitrary: fc.boolean().map((u) => new PreRestore(u)) },
  { weight: 3, arbitrary: fc.tuple(pickArb, fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean()).map(([n, l, p, pre, only]) => new Restore(n, l, p, pre, undefined, only)) },
  { weight: 1, arbitrary: fc.tuple(pickArb, fc.integer({ min: 0, max: 1500 }), fc.boolean()).map(([n, ms, only]) => new Restore(n, false, true, true, ms, only)) },
  { weight: 1, arbitrary: fc.constant(new Prune()) },
  { weight: 1, arbitrary: fc.constant(new Upload()) },
  { weight: 1, arbitrary: fc.constant(new Verify()) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 1500 }).map((ms) => new KillBackup(ms)) },
);

/** The live sources a sequence starts from: a few files, one of them in a folder. */
export function seedSources(w: World): void {
  for (const s of SOURCES) {
    const t = w.live.get(s)!;
    mkdirSync(pjoin(w.src(s), 'd'));
    t.set('d', { t: 'd' });
    for (const [k, data] of [['a', `${s} a\n`], ['b.txt', `${s} b\n`.repeat(20)], ['d/c', `${s} c\n`]] as const) {
      writeFileSync(join(w.src(s), k), data, { mode: 0o644 });
      t.set(k, { t: 'f', data: B(data), mode: 0o644 });
    }
  }
  if (existsSync(w.root) && readdirSync(w.root).length) throw new Error('scratch volume not empty');
}
