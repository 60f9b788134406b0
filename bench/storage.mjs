#!/usr/bin/env node
/**
 * bench/storage: remote bytes stored after 30 simulated nightlies (libfaketime moves each run's
 * clock one day on), for the same sequence of trees:
 *   l2backup, default remote policy (BACKUP_REMOTE_RETENTION_DAYS=90: every night kept)
 *   l2backup, calendar policy BACKUP_REMOTE_KEEP=daily=7,weekly=4,monthly=3
 *   rclone sync --backup-dir (one current copy, changed/deleted files moved to a dated folder)
 *   restic repository on the same dev S3 server via its rclone backend (backup --time, then forget with the same
 *   calendar policy and prune each night)
 * all on one dev S3 server (scripts/dev-s3-server.cjs); bytes stored = the bytes of every
 * object the server holds under each prefix. The tree: a 4 MiB model retrained weekly, one new
 * 256 KiB log a night (logs older than 7 days cleaned up), a report that grows, fixed configs.
 * SCALE multiplies the sizes; NIGHTS (default 30).
 */
import { mkdirSync, writeFileSync, mkdtempSync, rmSync, readdirSync, statSync, appendFileSync, existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

const SCALE = Number(process.env.SCALE ?? 1);
const NIGHTS = Number(process.env.NIGHTS ?? 30);
const POLICY = 'daily=7,weekly=4,monthly=3';
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const KiB = 1024;
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'l2bench-storage-'));
const data = join(work, 'data');
const l2backup = join(ROOT, 'bin/l2backup.js');
const first = Date.UTC(2026, 8, 1, 2, 0, 0);
const DAY = 86_400_000;

// The dev server is plain http on 127.0.0.1: a custom CA bundle from the host makes rclone refuse to start.
const { AWS_CA_BUNDLE: _ca, ...hostEnv } = process.env;

function sh(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { env: { ...hostEnv, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

function objectBytes(dir) {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile() && e.name.endsWith('._S3rver_object')) total += statSync(join(e.parentPath, e.name)).size;
  return total;
}

function treeBytes(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += statSync(join(e.parentPath, e.name)).size;
  return total;
}

/** Night n's tree. */
function night(n) {
  for (const d of ['models', 'logs', 'reports', 'configs']) mkdirSync(join(data, d), { recursive: true });
  if (n % 7 === 0) writeFileSync(join(data, 'models/model.bin'), randomBytes(Math.round(4096 * KiB * SCALE)));
  if (n === 0) {
    writeFileSync(join(data, 'configs/settings.json'), '{"mode":"paper"}\n');
    writeFileSync(join(data, 'configs/limits.yaml'), 'max_position: 10\n');
  }
  writeFileSync(join(data, `logs/fills-${String(n).padStart(3, '0')}.log`), randomBytes(Math.round(256 * KiB * SCALE)).toString('base64'));
  for (const f of readdirSync(join(data, 'logs'))) if (Number(f.slice(6, 9)) < n - 7) rmSync(join(data, 'logs', f));
  appendFileSync(join(data, 'reports/daily.csv'), `${n},${(Math.random() * 100).toFixed(2)}\n`.repeat(Math.round(40 * SCALE)));
}

const port = 19_000 + Math.floor(Math.random() * 1000);
const s3dir = join(work, 's3');
mkdirSync(s3dir);
const server = spawn('node', ['--openssl-legacy-provider', join(ROOT, 'scripts/dev-s3-server.cjs'), String(port), s3dir, 'bench'], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => server.stdout.once('data', r));
const endpoint = `http://127.0.0.1:${port}`;
const rcloneEnv = { RCLONE_CONFIG_DEV_TYPE: 's3', RCLONE_CONFIG_DEV_PROVIDER: 'Other', RCLONE_CONFIG_DEV_ENDPOINT: endpoint, RCLONE_CONFIG_DEV_ACCESS_KEY_ID: 'S3RVER', RCLONE_CONFIG_DEV_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_DEV_FORCE_PATH_STYLE: 'true', RCLONE_CONFIG_DEV_REGION: 'us-east-1' };
// restic reaches the same server through its rclone backend (its own s3 backend trips over s3rver's replies).
const resticEnv = { ...rcloneEnv, RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: 'rclone:dev:bench/restic', RESTIC_CACHE_DIR: join(work, 'restic-cache') };

const ours = [
  { name: 'l2backup, default (90 days)', prefix: 'l2default', extra: {} },
  { name: `l2backup, BACKUP_REMOTE_KEEP=${POLICY}`, prefix: 'l2calendar', extra: { BACKUP_REMOTE_KEEP: POLICY } },
].map((o) => ({ ...o, root: join(work, o.prefix) }));
const sources = ['models', 'logs', 'reports', 'configs'].map((s) => `${s}=${join(data, s)}`).join(',');

writeFileSync(join(work, 'none.env'), '');
sh('restic', ['init'], resticEnv);
const added = [];
try {
  for (let n = 0; n < NIGHTS; n++) {
    night(n);
    added.push(treeBytes(data));
    const when = new Date(first + n * DAY).toISOString().replace('T', ' ').slice(0, 19);
    for (const o of ours) {
      mkdirSync(o.root, { recursive: true });
      sh('node', [l2backup, 'nightly'], {
        BACKUP_ROOT: o.root,
        L2_ENV_FILE: join(work, 'none.env'),
        BACKUP_SOURCES: sources,
        BACKUP_BUCKET: `s3://bench/${o.prefix}`,
        S3_ENDPOINT: endpoint,
        S3_ACCESS_KEY_ID: 'S3RVER',
        S3_SECRET_ACCESS_KEY: 'S3RVER',
        TZ: 'UTC',
        NO_COLOR: '1',
        LD_PRELOAD: LIBFAKETIME,
        FAKETIME: `@${when}`,
        FAKETIME_DONT_RESET: '1',
        ...o.extra,
      });
    }
    const date = when.slice(0, 10);
    sh('rclone', ['sync', `${data}/`, 'dev:bench/rclone/current', '--backup-dir', `dev:bench/rclone/old/${date}`, '--s3-no-check-bucket'], rcloneEnv);
    sh('restic', ['backup', '--quiet', '--host', 'bench', '--time', when, data], resticEnv);
    sh('restic', ['forget', '--quiet', '--host', 'bench', ...POLICY.split(',').flatMap((r) => [`--keep-${r.split('=')[0]}`, r.split('=')[1]]), '--prune'], resticEnv);
    process.stderr.write(`night ${n + 1}/${NIGHTS} (${date})\n`);
  }

  const bucket = join(s3dir, 'bench');
  const rows = [...ours.map((o) => ({ name: o.name, bytes: objectBytes(join(bucket, o.prefix)) })), { name: 'rclone sync --backup-dir', bytes: objectBytes(join(bucket, 'rclone')) }, { name: `restic (forget ${POLICY} --prune)`, bytes: objectBytes(join(bucket, 'restic')) }];
  const status = JSON.parse(sh('node', [l2backup, 'status', '--json'], { BACKUP_ROOT: ours[1].root, L2_ENV_FILE: join(work, 'none.env'), BACKUP_SOURCES: sources, BACKUP_BUCKET: `s3://bench/${ours[1].prefix}`, S3_ENDPOINT: endpoint, S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER', BACKUP_REMOTE_KEEP: POLICY }));
  const remoteIds = readdirSync(join(bucket, 'l2calendar', 'snapshots'));
  const tree = added.at(-1);
  const base = rows[0].bytes;
  const restic = rows[3].bytes;
  console.log(`remote bytes stored after ${NIGHTS} nightlies (tree now ${(tree / 1e6).toFixed(2)} MB; sum of the ${NIGHTS} trees ${(added.reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB)`);
  console.log(`${'setup'.padEnd(58)} ${'MB stored'.padStart(10)} ${'/ tree'.padStart(8)} ${'/ default'.padStart(10)} ${'/ restic'.padStart(9)}`);
  for (const r of rows) console.log(`${r.name.padEnd(58)} ${(r.bytes / 1e6).toFixed(2).padStart(10)} ${(r.bytes / tree).toFixed(2).padStart(8)} ${(r.bytes / base).toFixed(3).padStart(10)} ${(r.bytes / restic).toFixed(2).padStart(9)}`);
  console.log(`calendar policy keeps ${remoteIds.length} remote snapshots: ${remoteIds.sort().join(' ')}`);
  console.log(`status --json remote bytes (from records) for the calendar run: ${status.usage.remote.bytes} vs objects on the server ${rows[1].bytes}`);
} finally {
  server.kill();
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
}
