#!/usr/bin/env node
/**
 * bench/backup: builds a ~1 GiB tree (3 model files of ~200 MiB, 20,000 small logs, 500
 * reports, 100 configs; SCALE=0.1 for a quick run) and prints, each as a ratio against its
 * peer measured in the same run (medians of RUNS runs):
 *   full snapshot vs `cp -a`                                          target <= 1.25
 *   first full backup vs `rsync -a --link-dest` (no previous)         target <= 1.5
 *   nightly after 1 % of the bytes changed vs `rsync -a --link-dest`  target <= 1.0
 *   nightly after 0.1 % changed, SMALL_FILES small files, vs rsync    target <= 0.9
 *   restore latest (every hash checked) vs `cp -a` of the snapshot    target <= 1.0
 *   restic (backup to a local repo, restore) is measured beside each, for reference
 *   peak memory of a nightly at MEM_SIZES files (100k, 300k; --million adds 1M) target <= 256 MiB
 * --local skips the remote part. The machine's load average is printed with each ratio.
 * --restore measures only the restore (after one nightly), with CPU time beside wall time;
 * BASELINE=/path/to/other/bin/l2backup.js times that build's restore too, interleaved.
 *   extra disk used by that nightly vs the changed bytes              target <= 1.05
 *   first remote upload vs `aws s3 sync` to the same local server     target >= 1.0 (throughput)
 *   bytes sent by a remote nightly vs the changed bytes               target <= 1.05
 *   peak memory for a tree of 100,000 small files                     target <= 200 MiB
 */
import { mkdirSync, writeFileSync, mkdtempSync, rmSync, readdirSync, readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, time, median, report, measure, load, timeCpu } from './lib.mjs';

const SCALE = Number(process.env.SCALE ?? 1);
const RUNS = Number(process.env.RUNS ?? 3);
const LOCAL_ONLY = process.argv.includes('--local');
const RESTORE_ONLY = process.argv.includes('--restore');
const SMALL_FILES = Number(process.env.SMALL_FILES ?? 100_000);
const MEM_SIZES = (process.env.MEM_SIZES ?? '100000,300000').split(',').map(Number).filter((n) => n > 0);
if (process.argv.includes('--million') || process.env.MILLION === '1') MEM_SIZES.push(1_000_000);
// SECTIONS=full,nightly,remote,small,memory (default: all) runs only those; e.g. the million-file
// figures alone: SECTIONS=small SMALL_FILES=1000000.
const SECTIONS = (process.env.SECTIONS ?? 'full,nightly,remote,small,memory').split(',');
const want = (section) => SECTIONS.includes(section) && !(section === 'remote' && LOCAL_ONLY);
const RESTIC = { ...process.env, RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: '' };
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'l2bench-backup-'));
const data = join(work, 'data');
const MiB = 1024 * 1024;
let results = true;

function buildTree() {
  for (const d of ['models', 'logs', 'reports', 'configs']) mkdirSync(join(data, d), { recursive: true });
  const model = randomBytes(MiB);
  for (let m = 0; m < 3; m++) {
    const fd = openSync(join(data, `models/model-${m}.bin`), 'w');
    for (let i = 0; i < Math.round(200 * SCALE); i++) {
      model[0] = i;
      model[1] = m;
      writeSync(fd, model);
    }
    closeSync(fd);
  }
  const logs = Math.round(20_000 * SCALE);
  for (let i = 0; i < logs; i++) {
    const dir = join(data, 'logs', String(i % 100));
    if (i < 100) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `fills-${i}.log`), randomBytes(1024).toString('base64'));
  }
  for (let i = 0; i < Math.round(500 * SCALE); i++) writeFileSync(join(data, `reports/report-${i}.csv`), randomBytes(15_000).toString('hex'));
  for (let i = 0; i < Math.max(10, Math.round(100 * SCALE)); i++) writeFileSync(join(data, `configs/cfg-${i}.yaml`), `key: ${i}\n`.repeat(40));
}

function treeBytes(dir) {
  return Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
}

/**
 * Changes ~1 % of the bytes: rewrites whole log files with new content of the same size, so
 * "changed bytes" is unambiguous (a file-level tool must store and send each changed file).
 */
function changeOnePercent(total, round) {
  const target = Math.round(total * 0.01);
  const logs = Math.round(20_000 * SCALE);
  let written = 0;
  for (let i = round * 7919; written < target; i += 13) {
    const f = join(data, 'logs', String(i % 100), `fills-${i % logs}.log`);
    const content = randomBytes(1024).toString('base64');
    writeFileSync(f, content);
    written += content.length;
  }
  return written;
}

const env = (root, extra = {}) => ({
  PATH: process.env.PATH,
  BACKUP_ROOT: root,
  L2_ENV_FILE: '/dev/null',
  NO_COLOR: '1',
  BACKUP_SOURCES: ['models', 'logs', 'reports', 'configs'].map((s) => `${s}=${join(data, s)}`).join(','),
  ...extra,
});
const l2backup = join(ROOT, 'bin/l2backup.js');

const needsTree = RESTORE_ONLY || ['full', 'nightly', 'remote'].some(want);
if (needsTree) {
  console.log(`building the tree (SCALE=${SCALE}) in ${work} ...`);
  buildTree();
  console.log(`tree: ${(treeBytes(data) / MiB).toFixed(0)} MiB`);
  execFileSync('sh', ['-c', `cat $(find ${data} -type f) > /dev/null`]);
}
const total = needsTree ? treeBytes(data) : 0;

// --restore: one nightly (and its rsync and restic peers), then only the restore figures.
if (RESTORE_ONLY) {
  const root = join(work, 'inc');
  mkdirSync(root);
  time('node', [l2backup, 'nightly'], { env: env(root) });
  const copy = join(work, 'rsync-base');
  time('rsync', ['-a', `${data}/`, `${copy}/`]);
  const repo = join(work, 'restic-inc');
  time('restic', ['init', '-q', '--repo', repo], { env: RESTIC });
  time('restic', ['backup', '-q', '--repo', repo, data], { env: RESTIC });
  restoreLatest(root, copy, repo);
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
  process.exit(results ? 0 : 1);
}

// 1. Full snapshot vs cp -a, rsync -a (first run of --link-dest: nothing to link), restic
if (want('full')) {
  const ours = [];
  const cp = [];
  const cpSync = [];
  const rs = [];
  const rc = [];
  for (let i = 0; i < RUNS; i++) {
    const root = join(work, `full-${i}`);
    mkdirSync(root);
    ours.push(time('node', [l2backup, 'snapshot'], { env: env(root) }));
    rmSync(root, { recursive: true });
    const dest = join(work, `cp-${i}`);
    const copied = time('cp', ['-a', data, dest]);
    cp.push(copied);
    // What cp would pay to be as durable as a published snapshot (which syncs before its rename).
    cpSync.push(copied + time('sync', ['--file-system', dest]));
    rmSync(dest, { recursive: true });
    rs.push(time('rsync', ['-a', `${data}/`, `${dest}/`]));
    rmSync(dest, { recursive: true });
    const repo = join(work, `restic-full-${i}`);
    time('restic', ['init', '-q', '--repo', repo], { env: RESTIC });
    rc.push(time('restic', ['backup', '-q', '--repo', repo, data], { env: RESTIC }));
    rmSync(repo, { recursive: true });
  }
  console.log(`load average: ${load()}`);
  results = report('full snapshot / cp -a', median(ours), median(cp), 1.25) && results;
  report('full snapshot / (cp -a + sync -f), both durable', median(ours), median(cpSync), 1.25);
  results = report('first full backup / rsync -a --link-dest', median(ours), median(rs), 1.5) && results;
  report('first full backup / restic backup (for reference)', median(ours), median(rc), Infinity);
}

// 2. Nightly after 1 % changed vs rsync --link-dest; extra disk vs changed bytes
if (want('nightly')) {
  const root = join(work, 'inc');
  mkdirSync(root);
  time('node', [l2backup, 'nightly'], { env: env(root) });
  const rs = join(work, 'rsync');
  mkdirSync(rs);
  time('rsync', ['-a', `${data}/`, join(rs, 'base/')]);
  let prevRsync = join(rs, 'base');
  const repo = join(work, 'restic-inc');
  time('restic', ['init', '-q', '--repo', repo], { env: RESTIC });
  time('restic', ['backup', '-q', '--repo', repo, data], { env: RESTIC });
  const ours = [];
  const peer = [];
  const rc = [];
  const extra = [];
  let lastChanged = 1;
  for (let i = 0; i < RUNS; i++) {
    const changed = changeOnePercent(total, i);
    lastChanged = changed;
    const before = readdirSync(root).filter((n) => /^\d{8}-\d{6}$/.test(n)).sort();
    ours.push(time('node', [l2backup, 'nightly'], { env: env(root) }));
    const after = readdirSync(root).filter((n) => /^\d{8}-\d{6}$/.test(n)).sort();
    const prev = join(root, before[before.length - 1]);
    const now = join(root, after[after.length - 1]);
    const du = execFileSync('du', ['-sb', prev, now]).toString().trim().split('\n');
    extra.push(Number(du[1].split('\t')[0]) / changed);
    const next = join(rs, `n${i}`);
    peer.push(time('rsync', ['-a', `--link-dest=${prevRsync}`, `${data}/`, `${next}/`]));
    prevRsync = next;
    rc.push(time('restic', ['backup', '-q', '--repo', repo, data], { env: RESTIC }));
  }
  console.log(`load average: ${load()}`);
  results = report('nightly after 1% changed / rsync -a --link-dest', median(ours), median(peer), 1.0) && results;
  report('nightly after 1% changed / restic backup (for reference)', median(ours), median(rc), Infinity);
  restoreLatest(root, prevRsync, repo);
  const e = median(extra);
  console.log(`extra disk used / changed bytes: ${e.toFixed(3)} (target <= 1.05; du of the new snapshot: folders, changed files, file list) ${e <= 1.05 ? 'OK' : 'MISSED'}`);
  if (RUNS >= 2) {
    const rsExtra = Number(execFileSync('du', ['-sb', join(rs, `n${RUNS - 2}`), prevRsync]).toString().trim().split('\n').pop().split('\t')[0]);
    console.log(`  for comparison, rsync --link-dest's own extra disk / changed bytes: ${(rsExtra / lastChanged).toFixed(3)} (its folders count too)`);
  }
  results = e <= 1.05 && results;
}

if (want('remote')) {
// 3. Remote: first upload throughput vs aws s3 sync; bytes sent by a remote nightly
{
  const port = 19_000 + Math.floor(Math.random() * 1000);
  const s3dir = join(work, 's3');
  mkdirSync(s3dir);
  const server = spawn('node', ['--openssl-legacy-provider', join(ROOT, 'scripts/dev-s3-server.cjs'), String(port), s3dir, 'bench'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => server.stdout.once('data', r));
  const s3env = { BACKUP_BUCKET: 's3://bench/l2', S3_ENDPOINT: `http://127.0.0.1:${port}`, S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER' };
  const root = join(work, 'remote');
  mkdirSync(root);
  // Our upload time, from our own log line ("uploaded <id>: ... in 12.3 s"): the snapshot itself is not upload time.
  const stderr = nightly(root, s3env);
  const m = /uploaded \S+: .* in ([\d.]+) (ms|s)\b/.exec(stderr);
  if (!m) throw new Error(`no upload line in:\n${stderr}`);
  const oursMs = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
  const awsMs = time('aws', ['s3', 'sync', data, 's3://bench/aws/', '--endpoint-url', `http://127.0.0.1:${port}`, '--only-show-errors'], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1' },
  });
  results = report('first remote upload throughput (MB/s) / aws s3 sync', total / 1e3 / oursMs, total / 1e3 / awsMs, 1.0, 'higher') && results;
  const changed = changeOnePercent(total, 99);
  nightly(root, s3env);
  const last = readdirSync(root).filter((n) => /^\d{8}-\d{6}$/.test(n)).sort().pop();
  const sent = JSON.parse(readFileSync(join(root, '.l2/backup/remote', `${last}.json`), 'utf8')).bytesSent;
  const r = sent / changed;
  console.log(`bytes sent by a remote nightly / changed bytes: ${r.toFixed(3)} (sent ${sent}, changed ${changed}; target <= 1.05) ${r <= 1.05 ? 'OK' : 'MISSED'}`);
  results = r <= 1.05 && results;
  server.kill();
}

}

/**
 * Restore latest into an empty folder, every hash checked, vs `cp -a` of the same snapshot
 * (rsync's newest copy) and `restic restore latest`.
 */
function restoreLatest(root, rsyncCopy, repo) {
  const ours = [];
  const base = [];
  const cp = [];
  const rc = [];
  const restoreWith = (program, t) => timeCpu('node', [program, 'restore', 'latest', '--target', t, '--no-pre-restore'], { env: env(root) });
  for (let i = 0; i < RUNS; i++) {
    const t = join(work, `restore-${i}`);
    ours.push(restoreWith(l2backup, t));
    rmSync(t, { recursive: true });
    if (process.env.BASELINE) {
      base.push(restoreWith(process.env.BASELINE, t));
      rmSync(t, { recursive: true });
    }
    cp.push(timeCpu('cp', ['-a', rsyncCopy, t]));
    rmSync(t, { recursive: true });
    rc.push(timeCpu('restic', ['restore', '-q', '--repo', repo, 'latest', '--target', t], { env: RESTIC }));
    rmSync(t, { recursive: true });
  }
  const ms = (xs) => median(xs.map((x) => x.ms));
  const cpu = (xs) => median(xs.map((x) => x.cpuMs));
  console.log(`load average: ${load()}`);
  results = report('restore latest (hashes checked) / cp -a', ms(ours), ms(cp), 1.0) && results;
  report('restore latest / restic restore (for reference)', ms(ours), ms(rc), Infinity);
  console.log(`  CPU time (user+sys, ms): ours ${cpu(ours).toFixed(0)}, cp -a ${cpu(cp).toFixed(0)}, restic ${cpu(rc).toFixed(0)}${base.length ? `, baseline ${cpu(base).toFixed(0)}` : ''}`);
  if (base.length) report(`restore latest / the same by BASELINE ${process.env.BASELINE}`, ms(ours), ms(base), Infinity);
}

/** `n` small files, 1,000 to a folder. */
function smallTree(dir, n) {
  for (let i = 0; i < n; i++) {
    const d = join(dir, String(Math.floor(i / 1000)));
    if (i % 1000 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}.log`), `line ${i}\n`);
  }
}

/** Rewrites 0.1 % of a small tree's files (new content, same size class). */
function touchSmall(dir, n, round) {
  for (let i = round * 101; i < n; i += 1000) writeFileSync(join(dir, String(Math.floor(i / 1000)), `f${i}.log`), `changed ${round} ${i}\n`);
}

// 4. Nightly after 0.1 % changed on SMALL_FILES small files vs rsync --link-dest and restic
if (want('small')) {
  const small = join(work, 'small', 'logs');
  smallTree(small, SMALL_FILES);
  const smallEnv = (root) => ({ ...env(root), BACKUP_SOURCES: `logs=${small}` });
  const root = join(work, 'small-ours');
  mkdirSync(root);
  // The first backup of the small tree, one run each (it is the slow one at a million files).
  const firstOurs = measure('node', [l2backup, 'nightly'], { env: smallEnv(root) });
  const rs = join(work, 'small-rsync');
  mkdirSync(rs);
  const firstRsync = measure('rsync', ['-a', `${small}/`, join(rs, 'base/')]);
  console.log(`load average: ${load()}`);
  results = report(`first full backup, ${SMALL_FILES} small files / rsync -a`, firstOurs.ms, firstRsync.ms, 1.5) && results;
  console.log(`  peak memory: ours ${firstOurs.mib.toFixed(0)} MiB, rsync ${firstRsync.mib.toFixed(0)} MiB (target <= 256 MiB)`);
  results = firstOurs.mib <= 256 && results;
  let prev = join(rs, 'base');
  const repo = join(work, 'small-restic');
  time('restic', ['init', '-q', '--repo', repo], { env: RESTIC });
  time('restic', ['backup', '-q', '--repo', repo, small], { env: RESTIC });
  const ours = [];
  const peer = [];
  const rc = [];
  for (let i = 0; i < RUNS; i++) {
    touchSmall(small, SMALL_FILES, i);
    ours.push(measure('node', [l2backup, 'nightly'], { env: smallEnv(root) }));
    const next = join(rs, `n${i}`);
    peer.push(measure('rsync', ['-a', `--link-dest=${prev}`, `${small}/`, `${next}/`]));
    rmSync(prev, { recursive: true });
    prev = next;
    rc.push(measure('restic', ['backup', '-q', '--repo', repo, small], { env: RESTIC }));
  }
  console.log(`load average: ${load()}`);
  const ms = (xs) => median(xs.map((x) => x.ms));
  const mib = (xs) => Math.max(...xs.map((x) => x.mib));
  results = report(`nightly after 0.1% changed, ${SMALL_FILES} small files / rsync -a --link-dest`, ms(ours), ms(peer), 0.9) && results;
  report(`nightly after 0.1% changed, ${SMALL_FILES} small files / restic backup (for reference)`, ms(ours), ms(rc), Infinity);
  console.log(`  peak memory: ours ${mib(ours).toFixed(0)} MiB, rsync ${mib(peer).toFixed(0)} MiB, restic ${mib(rc).toFixed(0)} MiB`);
  rmSync(join(work, 'small'), { recursive: true });
  rmSync(root, { recursive: true });
  rmSync(rs, { recursive: true });
  rmSync(repo, { recursive: true });
}

// 5. Peak memory of a nightly (0.1 % changed) as the tree grows: it must not grow with the tree
for (const n of want('memory') ? MEM_SIZES : []) {
  const tree = join(work, `mem-${n}`, 'logs');
  smallTree(tree, n);
  const root = join(work, `mem-${n}-root`);
  mkdirSync(root);
  const memEnv = { ...env(root), BACKUP_SOURCES: `logs=${tree}` };
  const first = measure('node', [l2backup, 'nightly'], { env: memEnv });
  touchSmall(tree, n, 1);
  const nightlyRun = measure('node', [l2backup, 'nightly'], { env: memEnv });
  const mib = Math.max(first.mib, nightlyRun.mib);
  console.log(`peak memory, ${n} small files: first ${first.mib.toFixed(0)} MiB, nightly ${nightlyRun.mib.toFixed(0)} MiB (target <= 256 MiB; load ${load()}) ${mib <= 256 ? 'OK' : 'MISSED'}`);
  results = mib <= 256 && results;
  rmSync(join(work, `mem-${n}`), { recursive: true });
  rmSync(root, { recursive: true });
}

/** Runs `l2backup nightly` and returns its log (stderr). */
function nightly(root, extra) {
  const r = spawnSync('node', [l2backup, 'nightly'], { env: env(root, extra), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`l2backup nightly exited ${r.status}:\n${r.stderr}`);
  return r.stderr;
}

if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
process.exitCode = results ? 0 : 1;
