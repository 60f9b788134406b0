#!/usr/bin/env node
/**
 * bench/remote: l2ops against `aws s3 sync` and rclone on the same dev S3 server, in the same
 * run (medians of RUNS, interleaved). Tree: ~165 MiB at SCALE=1 (two 50 MiB models, 3,000 small
 * logs, 300 reports); SCALE=0.2 for a quick run. Prints ratios:
 *   restore --from remote / aws s3 sync (download)          target <= 0.6   (and / rclone copy)
 *   verify --remote / aws s3 sync (download)                target <= 0.6
 *   remote nightly after 1% changed / rclone sync --copy-dest   target <= 1.0
 *   first remote upload / aws s3 sync (upload), and its peak memory (target <= 256 MiB)
 * and, for the remote nightly, the requests (nearly all CopyObject) in flight at most and the
 * bytes on the wire per unchanged file, both counted by a TCP proxy in front of the server.
 * Our nightly's time is its upload (from its log line), not the local snapshot before it.
 */
import { mkdirSync, writeFileSync, mkdtempSync, rmSync, readdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, time, median, report } from './lib.mjs';

const SCALE = Number(process.env.SCALE ?? 1);
const RUNS = Number(process.env.RUNS ?? 3);
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'l2bench-remote-'));
const data = join(work, 'data');
const MiB = 1024 * 1024;
const l2backup = join(ROOT, 'bin/l2backup.js');
let ok = true;

function buildTree() {
  for (const d of ['models', 'logs', 'reports']) mkdirSync(join(data, d), { recursive: true });
  const block = randomBytes(MiB);
  for (let m = 0; m < 2; m++) {
    const fd = openSync(join(data, `models/model-${m}.bin`), 'w');
    for (let i = 0; i < Math.max(1, Math.round(50 * SCALE)); i++) {
      block[0] = i;
      block[1] = m;
      writeSync(fd, block);
    }
    closeSync(fd);
  }
  for (let i = 0; i < Math.round(3000 * SCALE); i++) {
    const dir = join(data, 'logs', String(i % 50));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `fills-${i}.log`), randomBytes(1024).toString('base64'));
  }
  for (let i = 0; i < Math.round(300 * SCALE); i++) writeFileSync(join(data, `reports/report-${i}.csv`), randomBytes(15_000).toString('hex'));
}

/** Rewrites ~1% of the bytes as whole small files; returns the files changed. */
function changeOnePercent(total, round) {
  const logs = Math.round(3000 * SCALE);
  let written = 0;
  let files = 0;
  for (let i = round * 7919; written < total * 0.01; i += 13) {
    const content = randomBytes(1024).toString('base64');
    writeFileSync(join(data, 'logs', String((i % logs) % 50), `fills-${i % logs}.log`), content);
    written += content.length;
    files++;
  }
  return files;
}

/** A TCP proxy in front of the server: bytes both ways, and the most requests open at once. */
function countingProxy(port) {
  const stats = { bytes: 0, open: 0, maxOpen: 0 };
  const server = createServer((c) => {
    const s = connect(port, '127.0.0.1');
    c.on('data', (d) => {
      stats.bytes += d.length;
      // A request starts with its method: count requests in flight per connection.
      if (/^(GET|PUT|POST|HEAD|DELETE) /.test(d.subarray(0, 8).toString('latin1'))) {
        stats.open++;
        stats.maxOpen = Math.max(stats.maxOpen, stats.open);
      }
    });
    s.on('data', (d) => {
      stats.bytes += d.length;
      if (d.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ') stats.open = Math.max(0, stats.open - 1);
    });
    c.pipe(s);
    s.pipe(c);
    c.on('error', () => s.destroy());
    s.on('error', () => c.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, stats, close: () => server.close() })));
}

const s3port = 19_000 + Math.floor(Math.random() * 1000);
const s3dir = join(work, 's3');
mkdirSync(s3dir);
const server = spawn('node', ['--openssl-legacy-provider', join(ROOT, 'scripts/dev-s3-server.cjs'), String(s3port), s3dir, 'bench'], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => server.stdout.once('data', r));
// A failed run still stops its server and removes its folder.
process.on('exit', () => {
  server.kill();
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
});
const proxy = await countingProxy(s3port);
const endpoint = `http://127.0.0.1:${s3port}`;
const awsEnv = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1' };
// rclone's S3 backend refuses AWS_CA_BUNDLE with its own HTTP transport (LoadCustomCABundleError).
const { AWS_CA_BUNDLE: _unusedCaBundle, ...plainEnv } = process.env;
const rcloneEnv = { ...plainEnv, RCLONE_CONFIG_DEV_TYPE: 's3', RCLONE_CONFIG_DEV_PROVIDER: 'Other', RCLONE_CONFIG_DEV_ENDPOINT: endpoint, RCLONE_CONFIG_DEV_ACCESS_KEY_ID: 'S3RVER', RCLONE_CONFIG_DEV_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_DEV_FORCE_PATH_STYLE: 'true' };
const env = (root, extra = {}) => ({
  PATH: process.env.PATH,
  BACKUP_ROOT: root,
  L2_ENV_FILE: '/dev/null',
  NO_COLOR: '1',
  BACKUP_SOURCES: ['models', 'logs', 'reports'].map((s) => `${s}=${join(data, s)}`).join(','),
  BACKUP_BUCKET: 's3://bench/l2',
  S3_ENDPOINT: endpoint,
  S3_ACCESS_KEY_ID: 'S3RVER',
  S3_SECRET_ACCESS_KEY: 'S3RVER',
  ...extra,
});
const aws = (args) => time('aws', [...args, '--endpoint-url', endpoint, '--only-show-errors'], { env: awsEnv });
const rclone = (args) => time('rclone', args, { env: rcloneEnv });
const snapshotIds = (root) => readdirSync(root).filter((n) => /^\d{8}-\d{6}$/.test(n)).sort();

/**
 * `l2backup nightly` under /usr/bin/time: upload time from its log line, peak memory in MiB.
 * Not spawnSync: the counting proxy runs in this process's event loop, and a blocked loop would
 * leave every request through it unanswered (the nightly then times out).
 */
async function nightly(root, extra) {
  const child = spawn('/usr/bin/time', ['-f', 'peak %M', 'node', l2backup, 'nightly'], { env: env(root, extra), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const status = await new Promise((resolve) => child.on('close', resolve));
  if (status !== 0) throw new Error(`l2backup nightly exited ${status}:\n${stderr}`);
  // "in 850 ms", "in 12.3 s", "in 1 min 14 s"
  const m = /uploaded \S+: .* in (?:(\d+) min )?([\d.]+) (ms|s)\b/.exec(stderr);
  if (!m) throw new Error(`no upload line in:\n${stderr}`);
  return { ms: Number(m[1] ?? 0) * 60_000 + Number(m[2]) * (m[3] === 's' ? 1000 : 1), peakMiB: Number(/peak (\d+)/.exec(stderr)[1]) / 1024 };
}

console.log(`building the tree (SCALE=${SCALE}) in ${work} ...`);
buildTree();
const total = Number(spawnSync('du', ['-sb', data], { encoding: 'utf8' }).stdout.split('\t')[0]);
console.log(`tree: ${(total / MiB).toFixed(0)} MiB`);

// 1. First upload, with peak memory, against aws s3 sync.
const root = join(work, 'root');
mkdirSync(root);
const first = await nightly(root);
const awsUp = aws(['s3', 'sync', data, 's3://bench/aws/']);
ok = report('first remote upload / aws s3 sync (upload)', first.ms, awsUp, 1.0) && ok;
console.log(`first remote upload peak memory: ${first.peakMiB.toFixed(0)} MiB (target <= 256) ${first.peakMiB <= 256 ? 'OK' : 'MISSED'}`);
ok = first.peakMiB <= 256 && ok;
const [id] = snapshotIds(root);
rclone(['copy', data, 'dev:bench/rc/base']);

// 2. restore --from remote and verify --remote against aws s3 sync and rclone copy (download).
{
  const ours = [];
  const verify = [];
  const awsDown = [];
  const rcDown = [];
  let peak = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = join(work, `restore-${i}`);
    const started = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', 'peak %M', 'node', l2backup, 'restore', id, '--from', 'remote', '--target', t], { env: env(root), encoding: 'utf8' });
    ours.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (r.status !== 0) throw new Error(`restore exited ${r.status}:\n${r.stderr}`);
    peak = Math.max(peak, Number(/peak (\d+)/.exec(r.stderr)[1]) / 1024);
    rmSync(t, { recursive: true });
    verify.push(time('node', [l2backup, 'verify', id, '--remote'], { env: env(root) }));
    const a = join(work, `aws-${i}`);
    awsDown.push(aws(['s3', 'sync', `s3://bench/l2/snapshots/${id}/`, a]));
    rmSync(a, { recursive: true });
    const c = join(work, `rc-${i}`);
    rcDown.push(rclone(['copy', `dev:bench/l2/snapshots/${id}`, c]));
    rmSync(c, { recursive: true });
  }
  ok = report('restore --from remote / aws s3 sync (download)', median(ours), median(awsDown), 0.6) && ok;
  report('restore --from remote / rclone copy (download)', median(ours), median(rcDown), 1.0);
  ok = report('verify --remote (whole command) / aws s3 sync (download)', median(verify), median(awsDown), 0.6) && ok;
  console.log(`restore --from remote peak memory: ${peak.toFixed(0)} MiB`);
}

// 3. Remote nightly after 1% changed (server-side copies into a new prefix) against rclone sync --copy-dest.
{
  const ours = [];
  const peer = [];
  let copiesInFlight = 0;
  let perUnchanged = 0;
  for (let i = 0; i < RUNS; i++) {
    const changedFiles = changeOnePercent(total, i + 1);
    proxy.stats.bytes = 0;
    proxy.stats.maxOpen = 0;
    const before = proxy.stats.bytes;
    ours.push((await nightly(root, { S3_ENDPOINT: `http://127.0.0.1:${proxy.port}` })).ms);
    const wire = proxy.stats.bytes - before;
    copiesInFlight = Math.max(copiesInFlight, proxy.stats.maxOpen);
    const files = Number(spawnSync('find', [data, '-type', 'f'], { encoding: 'utf8' }).stdout.trim().split('\n').length);
    const changedBytes = changedFiles * 1368;
    perUnchanged = (wire - changedBytes) / (files - changedFiles);
    peer.push(rclone(['sync', data, `dev:bench/rc/n${i}`, '--copy-dest', i === 0 ? 'dev:bench/rc/base' : `dev:bench/rc/n${i - 1}`]));
  }
  ok = report('remote nightly after 1% changed / rclone sync --copy-dest', median(ours), median(peer), 1.0) && ok;
  console.log(`remote nightly: at most ${copiesInFlight} requests in flight (BACKUP_UPLOAD_CONCURRENCY); ~${perUnchanged.toFixed(0)} bytes on the wire per unchanged file (the CopyObject request and answer, listing and file-list reads spread over them)`);
}

proxy.close();
server.kill();
if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
process.exitCode = ok ? 0 : 1;
