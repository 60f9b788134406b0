/**
 * The real side and the reference model of the model-based backup test.
 *
 * Real: a scratch volume with two live sources (models, logs), a backups root, a sentinel
 * folder outside everything (`outside/`, which only restore-through-a-symlink could touch),
 * the built bin/l2backup.js run as a child process (under libfaketime when the clock is moved),
 * and the shared S3 dev server behind a fault proxy (up, down = refused, hung = accepts and never
 * answers).
 *
 * Model: the live tree of each source, and for every snapshot that ever became visible what it
 * must contain (the live tree when its run started), its kind, its place in run order and
 * whether every source was there. The checks after each step compare the real side with it.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join as pjoin } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { bin } from '../helpers/run.js';
import { tracked, waitFor, scratch } from '../helpers/cleanup.js';
import type { TestS3 } from '../helpers/s3.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { KNOWN_DEFECTS_PENDING, type KnownDefect } from './known-defects.js';
import { type Tree, type Node, B, cloneTree, diffTrees, oddName, overlay, readTree, show, join } from './tree.js';

export const SOURCES = ['models', 'logs'] as const;
export type Source = (typeof SOURCES)[number];
export type S3Mode = 'up' | 'down' | 'hung';

export const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** A run that has not ended after this long is killed and counted as hung (never a timing assertion: only a bound). */
const RUN_BOUND_MS = Number(process.env.MODEL_RUN_BOUND_MS ?? 90_000);
/** With the server hung, a run must end within a few S3_TIMEOUT_MS (issue §3); 20 of them is generous even on a busy machine. */
const HUNG_RUN_BOUND_MS = Number(process.env.MODEL_HUNG_RUN_BOUND_MS ?? 40_000);
/** S3 timeout given to the programs; a hung server must end a run within a few of these (issue §3). */
const S3_TIMEOUT_MS = 2000;

export interface Expected {
  id: string;
  kind: 'nightly' | 'snapshot' | 'emergency-pre-restore';
  order: number;
  /** the programs' clock offset (days) when it ran: its recorded finish time, to the day */
  days: number;
  /** per source: its tree, or undefined when the source was missing */
  trees: Map<Source, Tree | undefined>;
  complete: boolean;
  /** a known defect made this snapshot differ from the model: not compared again */
  tainted?: string;
}

export const stats = { sequences: 0, steps: 0, runs: 0, kills: 0, checks: 0, known: new Map<string, number>(), failures: 0 };

export class ModelFailure extends Error {}

export interface RunOutcome {
  exitCode: number;
  all: string;
  killed: boolean;
  hung: boolean;
}

export class World {
  dir: string;
  root: string;
  data: string;
  outside: string;
  stash: string;
  env: Record<string, string>;
  clockDays = 0;
  s3Mode: S3Mode = 'up';
  order = 0;
  /** model of the live sources; undefined = source folder removed (its tree kept in `stashed`) */
  live = new Map<Source, Tree | undefined>();
  stashed = new Map<Source, Tree>();
  outsideTree: Tree;
  expected = new Map<string, Expected>();
  remoteChecked = new Set<string>();
  log: string[] = [];
  /** ids whose upload failed for good (a known defect may keep them pending) */
  constructor(
    readonly s3: TestS3,
    readonly proxy: FaultProxy,
    readonly seq: number,
  ) {
    this.dir = mkdtempSync(pjoin(scratch(), 'l2model-'));
    this.root = pjoin(this.dir, 'backups');
    this.data = pjoin(this.dir, 'data');
    this.outside = pjoin(this.dir, 'outside');
    this.stash = pjoin(this.dir, 'stash');
    for (const d of [this.root, this.outside, this.stash, pjoin(this.dir, 'targets')]) mkdirSync(d, { recursive: true });
    writeFileSync(pjoin(this.dir, 'env'), '');
    writeFileSync(pjoin(this.outside, 'keep.txt'), 'must never change\n');
    mkdirSync(pjoin(this.outside, 'sub'));
    this.outsideTree = readTree(this.outside);
    for (const s of SOURCES) {
      mkdirSync(pjoin(this.data, s), { recursive: true });
      this.live.set(s, new Map());
    }
    this.env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.dir,
      NO_COLOR: '1',
      BACKUP_ROOT: this.root,
      BACKUP_SOURCES: SOURCES.map((s) => `${s}=${pjoin(this.data, s)}`).join(','),
      // An (empty) env file, as every install has: its redacted copy goes into the snapshot too.
      L2_ENV_FILE: pjoin(this.dir, 'env'),
      BACKUP_BUCKET: `s3://${s3.bucket}/model-${process.pid}-${seq}`,
      S3_ENDPOINT: proxy.url,
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      S3_TIMEOUT_MS: String(S3_TIMEOUT_MS),
      BACKUP_MULTIPART_MB: '5',
    };
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  src(s: Source): string {
    return pjoin(this.data, s);
  }

  note(line: string): void {
    this.log.push(line);
  }

  /** A failed check: fails the sequence, unless it is a known issue-9 defect switched off for now. */
  problem(defect: KnownDefect | undefined, msg: string): boolean {
    if (defect && KNOWN_DEFECTS_PENDING[defect]) {
      stats.known.set(defect, (stats.known.get(defect) ?? 0) + 1);
      this.note(`KNOWN ${defect}: ${msg}`);
      return true;
    }
    throw new ModelFailure(`${defect ? `${defect}: ` : ''}${msg}`);
  }

  // ---------------------------------------------------------------- running the programs

  runEnv(): Record<string, string> {
    if (this.clockDays === 0) return this.env;
    return { ...this.env, LD_PRELOAD: FAKETIME_LIB, FAKETIME: `${this.clockDays > 0 ? '+' : ''}${this.clockDays}d`, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  }

  spawn(args: string[]): ResultPromise<{ all: true; reject: false }> {
    stats.runs++;
    return tracked(execa('node', [bin('l2backup'), ...args], { env: this.runEnv(), extendEnv: false, reject: false, all: true }));
  }

  /** Runs l2backup to its end (bounded); `killAt` kills it with SIGKILL at a moment after it took the lock. */
  async run(args: string[], killAfterLockMs?: number): Promise<RunOutcome> {
    const child = this.spawn(args);
    let killed = false;
    let hung = false;
    const limit = this.s3Mode === 'hung' ? HUNG_RUN_BOUND_MS : RUN_BOUND_MS;
    const bound = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, limit);
    if (killAfterLockMs !== undefined) {
      const lock = pjoin(this.root, '.l2/locks/backup.lock');
      await waitFor('the run to take the backup lock', () => existsSync(lock) || child.exitCode !== null || child.signalCode !== null, RUN_BOUND_MS);
      await new Promise((r) => setTimeout(r, killAfterLockMs));
      if (child.exitCode === null) {
        killed = child.kill('SIGKILL');
        stats.kills++;
      }
    }
    const res = await child;
    clearTimeout(bound);
    const all = String(res.all ?? '');
    const exitCode = res.exitCode ?? -1;
    this.note(`  $ l2backup ${args.join(' ')}${this.clockDays ? ` [clock ${this.clockDays}d]` : ''} [s3 ${this.s3Mode}] -> ${killed ? 'SIGKILL' : hung ? 'HUNG, killed' : exitCode}`);
    if (!killed && !hung) {
      if (![0, 1, 2, 3, 75].includes(exitCode)) this.problem(undefined, `l2backup ${args.join(' ')} exited ${exitCode} (not a documented exit code):\n${all.slice(-1500)}`);
      if (/\n\s+at .*:\d+:\d+/.test(all)) this.problem(undefined, `l2backup ${args.join(' ')} printed a stack trace:\n${all.slice(-1500)}`);
    }
    if (hung) this.problem(this.s3Mode === 'hung' ? 'S3_HANG_BLOCKS_RUN' : undefined, `l2backup ${args.join(' ')} had not ended after ${limit} ms with the S3 server ${this.s3Mode}`);
    return { exitCode, all, killed, hung };
  }

  // ---------------------------------------------------------------- snapshots

  /** Complete-looking local snapshots (manifest present): id -> folder. */
  visible(): Map<string, string> {
    const out = new Map<string, string>();
    for (const parent of [this.root, pjoin(this.root, '.pre-restore')]) {
      if (!existsSync(parent)) continue;
      for (const n of readdirSync(parent)) if (/^\d{8}-\d{6}$/.test(n) && existsSync(pjoin(parent, n, '.l2-manifest.json'))) out.set(n, pjoin(parent, n));
    }
    return out;
  }

  /** Runs a job that may publish snapshots; each new one must contain `before` (the live tree when it started). */
  async job(args: string[], kind: Expected['kind'], killAfterLockMs?: number): Promise<RunOutcome> {
    const before = this.visible();
    const trees = new Map<Source, Tree | undefined>(SOURCES.map((s) => [s, this.live.get(s) && cloneTree(this.live.get(s)!)]));
    const res = await this.run(args, killAfterLockMs);
    this.record(before, trees, kind);
    return res;
  }

  record(before: Map<string, string>, trees: Map<Source, Tree | undefined>, kind: Expected['kind']): void {
    for (const [id, dir] of this.visible()) {
      if (before.has(id)) continue;
      const k = dir.includes('/.pre-restore/') ? 'emergency-pre-restore' : kind === 'emergency-pre-restore' ? 'snapshot' : kind;
      const complete = SOURCES.every((s) => trees.get(s) !== undefined);
      if (this.expected.has(id)) this.problem(undefined, `snapshot id ${id} was used twice (an earlier snapshot with it was deleted; ids must name new snapshots)`);
      this.expected.set(id, { id, kind: k, order: ++this.order, days: this.clockDays, trees, complete });
      this.note(`  new snapshot ${id} (${k}${complete ? '' : ', partial'})`);
    }
  }

  // ---------------------------------------------------------------- checks

  /** Everything checkable without the programs; after every step. */
  checkLocal(): void {
    stats.checks++;
    // Nothing outside the sources, targets and backups root ever changes.
    const out = diffTrees(this.outsideTree, readTree(this.outside), true);
    if (out.length) this.problem('RESTORE_TYPE_SWAP_FAILS', `the folder outside every source and target changed: ${out.map((d) => d.what).join('; ')}`);
    // The live sources are what the model says (only restore writes there, and only what it restores).
    for (const s of SOURCES) {
      const want = this.live.get(s);
      if (want === undefined) {
        if (existsSync(this.src(s))) this.problem(undefined, `source ${s} was removed and has come back`);
        continue;
      }
      const diff = diffTrees(want, readTree(this.src(s)), true);
      if (diff.length) {
        const temp = diff.every((d) => !d.expected && show(d.key).includes('.l2restore-'));
        this.problem(temp ? 'KILLED_RESTORE_LEAVES_TEMP_FILES' : 'RESTORE_TYPE_SWAP_FAILS', `live source ${s} differs from the model: ${diff.slice(0, 6).map((d) => d.what).join('; ')}`);
        this.live.set(s, readTree(this.src(s)));
      }
    }
    // Every visible snapshot holds exactly what its sources held when its run started.
    const vis = this.visible();
    for (const [id, dir] of vis) {
      const exp = this.expected.get(id);
      if (!exp) this.problem(undefined, `snapshot ${id} is visible but no run of this sequence made it`);
      if (!exp || exp.tainted) continue;
      for (const s of SOURCES) {
        const want = exp.trees.get(s);
        const got = readTree(pjoin(dir, s));
        if (want === undefined) {
          if (got.size) this.problem(undefined, `snapshot ${id}: source ${s} was missing, yet the snapshot holds ${got.size} entries for it`);
          continue;
        }
        const diff = diffTrees(want, got, false);
        if (diff.length) {
          const defect = classify(diff);
          this.problem(defect, `snapshot ${id} (${exp.kind}) ${s} differs from the source as it was: ${diff.slice(0, 6).map((d) => d.what).join('; ')}`);
          exp.tainted = defect;
        }
      }
    }
    // Every source keeps its newest complete copy (by run order).
    for (const s of SOURCES) {
      const last = [...this.expected.values()].filter((e) => e.kind !== 'emergency-pre-restore' && e.trees.get(s) !== undefined).sort((a, b) => b.order - a.order)[0];
      if (last && !vis.has(last.id) && !last.tainted) {
        this.problem('LAST_COMPLETE_COPY_PRUNED', `source ${s}: its newest complete copy, snapshot ${last.id}, was deleted`);
        last.tainted = 'LAST_COMPLETE_COPY_PRUNED';
      }
    }
  }

  /**
   * The newest complete nightly/snapshot by recorded finish time, among those still there; one
   * recorded after the programs' "now" (the clock moved back) only while none from the present is.
   */
  expectedLatest(): string | undefined {
    const vis = this.visible();
    const c = [...this.expected.values()].filter((e) => e.kind !== 'emergency-pre-restore' && e.complete && vis.has(e.id) && !vis.get(e.id)!.includes('/.pre-restore/'));
    const present = c.filter((e) => e.days <= this.clockDays);
    const finish = (e: Expected) => e.days * 1e9 + e.order;
    return (present.length ? present : c).sort((a, b) => finish(b) - finish(a))[0]?.id;
  }

  async checkLatest(): Promise<void> {
    const want = this.expectedLatest();
    if (!want) return;
    stats.checks++;
    const res = await this.run(['restore', 'latest', '--dry-run', '--target', pjoin(this.dir, 'targets', 'dry')]);
    const got = /would restore snapshot (\d{8}-\d{6})/.exec(res.all)?.[1];
    if (!got && this.oddIn(want)) this.problem('ODD_NAMES_LOST', `"latest" (${want}) cannot even be dry-run restored: ${res.all.slice(-300)}`);
    else if (got !== want) this.problem('LATEST_WRONG', `"latest" is ${got ?? `an error (exit ${res.exitCode})`}, expected ${want} (the newest complete nightly/snapshot)`);
  }

  /** Every remote snapshot listed complete holds exactly its local model (checked once: they never change). */
  async checkRemote(): Promise<void> {
    if (this.s3Mode !== 'up') return;
    stats.checks++;
    const list = await this.run(['list', '--remote', '--json']);
    if (list.exitCode !== 0) return this.void(this.problem(undefined, `list --remote failed with the server up: ${list.all.slice(-500)}`));
    const rows = JSON.parse(list.all.slice(list.all.indexOf('['))) as { id: string; complete: boolean }[];
    const fresh = rows.filter((x) => x.complete && !this.remoteChecked.has(x.id));
    for (const r of fresh) {
      this.remoteChecked.add(r.id);
      const exp = this.expected.get(r.id);
      if (!exp) {
        this.problem(undefined, `remote snapshot ${r.id} is listed complete but no run of this sequence made it`);
        continue;
      }
      if (exp.tainted) continue;
      stats.checks++;
      const target = pjoin(this.dir, 'targets', `remote-${r.id}`);
      const res = await this.run(['restore', r.id, '--from', 'remote', '--target', target]);
      const diffs: string[] = [];
      let defect: KnownDefect | undefined;
      for (const s of SOURCES) {
        const want = exp.trees.get(s);
        if (!want) continue;
        const d = diffTrees(want, readTree(pjoin(target, s)), false);
        defect ??= d.length ? classify(d) : undefined;
        diffs.push(...d.map((x) => `${s}: ${x.what}`));
      }
      const odd = SOURCES.some((s) => [...(exp.trees.get(s)?.keys() ?? [])].some(oddName));
      if (res.exitCode !== 0 && odd) defect = 'ODD_NAMES_LOST';
      if (res.exitCode !== 0 || diffs.length) this.problem(defect, `remote snapshot ${r.id} listed complete is not byte-exact (restore exit ${res.exitCode}): ${diffs.slice(0, 6).join('; ')} ${res.exitCode ? res.all.slice(-400) : ''}`);
      rmSync(target, { recursive: true, force: true });
    }
    const remoteLatestWant = [...this.expected.values()].filter((e) => e.kind !== 'emergency-pre-restore' && e.complete && rows.some((r) => r.complete && r.id === e.id)).sort((a, b) => b.order - a.order)[0]?.id;
    // Remote "latest" can only change when a new complete remote snapshot appears.
    if (remoteLatestWant && fresh.length) {
      stats.checks++;
      const res = await this.run(['restore', 'latest', '--from', 'remote', '--dry-run', '--target', pjoin(this.dir, 'targets', 'dry')]);
      const got = /would restore snapshot (\d{8}-\d{6})/.exec(res.all)?.[1];
      if (!got && this.oddIn(remoteLatestWant)) this.problem('ODD_NAMES_LOST', `remote "latest" (${remoteLatestWant}) cannot even be dry-run restored: ${res.all.slice(-300)}`);
      else if (got !== remoteLatestWant) this.problem('LATEST_WRONG', `remote "latest" is ${got ?? `an error (exit ${res.exitCode})`}, expected ${remoteLatestWant}`);
    }
  }

  void(_x: unknown): void {}

  /** The snapshot holds a name of the kind issue 9 §1 "Any name Linux allows" is about. */
  oddIn(id: string): boolean {
    const exp = this.expected.get(id);
    return !!exp && SOURCES.some((s) => [...(exp.trees.get(s)?.keys() ?? [])].some(oddName));
  }

  // ---------------------------------------------------------------- restore in the model

  /** The tree an in-place restore of `id` must leave in the live sources. */
  restoreInModel(id: string): void {
    const exp = this.expected.get(id)!;
    for (const s of SOURCES) {
      const t = exp.trees.get(s);
      if (!t) continue;
      const cur = this.live.get(s) ?? new Map();
      this.live.set(s, overlay(cur, t));
    }
  }

  /** After a killed in-place restore: every file is its old or its restored version; then the disk is the model. */
  adoptAfterKill(id: string, old: Map<Source, Tree | undefined>): void {
    const exp = this.expected.get(id)!;
    for (const s of SOURCES) {
      if (!exp.trees.get(s)) continue;
      // A removed source the restore never got to stays removed.
      if (old.get(s) === undefined && !existsSync(this.src(s))) continue;
      const disk = readTree(this.src(s));
      const before = old.get(s) ?? new Map<string, Node>();
      const after = overlay(before, exp.trees.get(s)!);
      for (const [k, n] of disk) {
        if (show(k).includes('.l2restore-')) continue;
        const ok = [before.get(k), after.get(k)].some((m) => m && m.t === n.t && (n.t !== 'f' || (m.t === 'f' && m.data.equals(n.data))) && (n.t !== 'l' || (m.t === 'l' && m.target === n.target)));
        if (!ok) this.problem('RESTORE_TYPE_SWAP_FAILS', `killed restore of ${id}: ${s}/${show(k)} is neither its old nor its restored version`);
      }
      const temps = [...disk.keys()].filter((k) => show(k).includes('.l2restore-'));
      if (temps.length) this.problem('KILLED_RESTORE_LEAVES_TEMP_FILES', `killed restore of ${id} left ${temps.map(show).join(', ')} in the live source ${s}`);
      this.live.set(s, disk);
    }
  }
}

/** Which known defect a snapshot difference is (undefined: none we know of; the test fails). */
export function classify(diff: { key: string; expected?: Node }[]): KnownDefect | undefined {
  if (diff.every((d) => d.expected?.t === 'f' && d.expected.sameSizeRewrite)) return 'SAME_SIZE_SAME_MTIME_STORED_STALE';
  if (diff.every((d) => oddName(d.key) || (d.expected?.t === 'f' && d.expected.sameSizeRewrite))) return 'ODD_NAMES_LOST';
  return undefined;
}

export { B, join, show, renameSync };
