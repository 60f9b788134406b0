/**
 * Every setting l2ops reads, in one table: name, group, default, whether it is a secret,
 * how it is parsed and what it means. The README's variable table follows this file.
 */
import * as p from './parsers.js';
import { keepPolicy } from './keep-policy.js';

export type Group = 'core' | 'alert' | 'backup' | 'health';

interface BaseSpec<T> {
  group: Group;
  doc: string;
  secret?: boolean;
  parse: (raw: string) => T;
}
/** A default may name BACKUP_ROOT as `${BACKUP_ROOT}`; it is expanded with the effective value. */
export interface DefaultedSpec<T> extends BaseSpec<T> {
  default: string;
}
export interface OptionalSpec<T> extends BaseSpec<T> {
  default?: undefined;
}
export type Spec<T> = DefaultedSpec<T> | OptionalSpec<T>;

const def = <T>(s: DefaultedSpec<T>): DefaultedSpec<T> => s;
const opt = <T>(s: OptionalSpec<T>): OptionalSpec<T> => s;

export const SETTINGS = {
  BACKUP_ROOT: def({ group: 'core', default: '/backups', parse: p.absPath, doc: 'The backups volume: snapshots, and all shared state under .l2/' }),
  L2_ENV_FILE: def({ group: 'core', default: '/app/.env', parse: p.absPath, doc: 'Env file read at start-up (process environment wins); only from the environment' }),
  L2_METRICS_DIR: opt({ group: 'core', parse: p.absPath, doc: "node_exporter textfile collector folder: l2ops.prom is rewritten there after every run (must exist)" }),

  ALERT_WEBHOOK_URL: opt({ group: 'alert', secret: true, parse: p.httpUrl, doc: 'Slack/Mattermost-compatible incoming webhook; unset: alerts are ALERT log lines only' }),
  ALERT_WEBHOOK_SECRET: opt({ group: 'alert', secret: true, parse: p.nonEmpty, doc: 'HMAC-SHA256 key for the X-L2-Signature header' }),
  ALERT_BUFFER_FILE: def({ group: 'alert', default: '${BACKUP_ROOT}/.l2/alerts_buffer.jsonl', parse: p.absPath, doc: 'Undelivered alerts, one JSON line each' }),
  ALERT_BUFFER_MAX: def({ group: 'alert', default: '10000', parse: p.int(1, 1_000_000), doc: 'Buffer cap; past it the oldest alerts are dropped and counted' }),
  ALERT_TIMEOUT_MS: def({ group: 'alert', default: '5000', parse: p.int(100, 120_000), doc: 'Timeout of one delivery attempt' }),
  ALERT_BUDGET_MS: def({ group: 'alert', default: '15000', parse: p.int(100, 600_000), doc: 'Total time a process spends delivering alerts' }),
  ALERT_MIN_INTERVAL_MS: def({ group: 'alert', default: '1000', parse: p.int(0, 60_000), doc: 'Pacing between webhook messages (Slack allows one per second)' }),

  BACKUP_SOURCES: def({ group: 'backup', default: 'models=/data/models,logs=/data/logs,reports=/data/reports,configs=/data/configs', parse: p.namedPaths, doc: 'name=/path pairs; the names are the snapshot folders' }),
  BACKUP_EXCLUDE: def({ group: 'backup', default: '', parse: p.globs, doc: 'Comma-separated globs (fast-glob syntax, relative to each source) left out of snapshots' }),
  BACKUP_LOCAL_RETENTION_DAYS: def({ group: 'backup', default: '3', parse: p.number(0, 3650), doc: 'Local snapshots older than this are deleted (never the newest complete one)' }),
  BACKUP_REMOTE_RETENTION_DAYS: def({ group: 'backup', default: '90', parse: p.number(0, 36500), doc: 'Remote snapshots older than this are deleted (never the newest complete one)' }),
  BACKUP_LOCAL_KEEP: opt({ group: 'backup', parse: keepPolicy, doc: 'Calendar retention of local snapshots, restic-style (e.g. within=3d or daily=7,weekly=4); wins over BACKUP_LOCAL_RETENTION_DAYS when set' }),
  BACKUP_REMOTE_KEEP: opt({ group: 'backup', parse: keepPolicy, doc: 'Calendar retention of remote snapshots, restic-style (e.g. daily=14,weekly=8,monthly=12); wins over BACKUP_REMOTE_RETENTION_DAYS when set' }),
  BACKUP_LOCAL_BUDGET_BYTES: opt({ group: 'backup', parse: p.byteSize, doc: 'Warn (status line and alert) when the 30-day forecast of local snapshot bytes passes this (e.g. 50GB; units B, KB, MB, GB, TB = powers of 1000, KiB, MiB, GiB, TiB = powers of 1024)' }),
  BACKUP_REMOTE_BUDGET_BYTES: opt({ group: 'backup', parse: p.byteSize, doc: 'Warn (status line and alert) when the 30-day forecast of remote bytes stored passes this (same units)' }),
  BACKUP_PRE_RESTORE_RETENTION_DAYS: def({ group: 'backup', default: '7', parse: p.number(0, 3650), doc: 'Pre-restore captures older than this are deleted' }),
  LOG_RETENTION_DAYS: def({ group: 'backup', default: '7', parse: p.number(1, 3650), doc: 'cleanup-logs deletes backed-up log files older than this' }),
  BACKUP_BUCKET: opt({ group: 'backup', parse: p.s3Bucket, doc: 'Remote copies: s3://bucket[/prefix]; unset: local only' }),
  S3_ENDPOINT: opt({ group: 'backup', parse: p.httpUrl, doc: 'S3-compatible endpoint (MinIO...); path-style addressing' }),
  S3_REGION: def({ group: 'backup', default: 'us-east-1', parse: p.nonEmpty, doc: 'S3 region' }),
  S3_ACCESS_KEY_ID: opt({ group: 'backup', secret: true, parse: p.nonEmpty, doc: 'S3 access key (unset: the AWS SDK default chain)' }),
  S3_SECRET_ACCESS_KEY: opt({ group: 'backup', secret: true, parse: p.nonEmpty, doc: 'S3 secret key' }),
  S3_CHECKSUM: opt({ group: 'backup', parse: p.oneOf('when_required', 'when_supported'), doc: 'SDK checksums; default when_required with S3_ENDPOINT (many S3-compatible servers mishandle CRC trailers), else when_supported' }),
  BACKUP_UPLOAD_CONCURRENCY: def({ group: 'backup', default: '8', parse: p.int(1, 64), doc: 'Parallel uploads (objects and multipart parts)' }),
  BACKUP_DOWNLOAD_CONCURRENCY: def({ group: 'backup', default: '8', parse: p.int(1, 64), doc: 'Parallel downloads of restore --from remote and verify --remote (objects, and ranged parts of large ones; the parts held at once stay within 128 MiB, smaller parts when needed)' }),
  S3_TIMEOUT_MS: def({ group: 'backup', default: '60000', parse: p.int(1000, 3_600_000), doc: 'Timeout of one S3 request (a server that accepts and never answers)' }),
  BACKUP_PING_URL: opt({ group: 'backup', secret: true, parse: p.httpUrl, doc: 'healthchecks.io-style check pinged by nightly: <url>/start, then <url> on success or <url>/<exit code> on failure (summary as the body)' }),
  BACKUP_PING_TIMEOUT_MS: def({ group: 'backup', default: '5000', parse: p.int(100, 60_000), doc: 'Timeout of one BACKUP_PING_URL ping (a failed ping is a warning)' }),
  BACKUP_MULTIPART_MB: def({ group: 'backup', default: '16', parse: p.int(5, 5120), doc: 'Files from this size up are uploaded in parts of this size' }),
  // issue 12: large-object copies, server-side encryption, object lock, prune keys
  S3_COPY_PART_THRESHOLD_BYTES: def({ group: 'backup', default: '5368709120', parse: p.int(1, 5 * 1024 ** 4), doc: 'Unchanged objects from this size up are copied server-side in parts (UploadPartCopy); CopyObject stops at 5 GiB' }),
  S3_COPY_PART_BYTES: def({ group: 'backup', default: '536870912', parse: p.int(5 * 1024 ** 2, 5 * 1024 ** 3), doc: 'Part size of a multipart server-side copy (5 MiB to 5 GiB)' }),
  S3_SSE: opt({ group: 'backup', parse: p.choice('AES256', 'aws:kms'), doc: 'Ask the server to encrypt every object written (PutObject, multipart uploads, copies); unset: nothing asked' }),
  S3_SSE_KMS_KEY_ID: opt({ group: 'backup', parse: p.nonEmpty, doc: 'KMS key for S3_SSE=aws:kms (unset: the account default key)' }),
  S3_OBJECT_LOCK_MODE: opt({ group: 'backup', parse: p.choice('GOVERNANCE', 'COMPLIANCE'), doc: 'Object lock mode set on every object written (the bucket must have object lock enabled)' }),
  S3_OBJECT_LOCK_DAYS: opt({ group: 'backup', parse: p.int(1, 36500), doc: 'Days each object written stays locked (with S3_OBJECT_LOCK_MODE)' }),
  S3_PRUNE_ACCESS_KEY_ID: opt({ group: 'backup', secret: true, parse: p.nonEmpty, doc: 'Access key used only for remote deletes (prune); unset: S3_ACCESS_KEY_ID' }),
  S3_PRUNE_SECRET_ACCESS_KEY: opt({ group: 'backup', secret: true, parse: p.nonEmpty, doc: 'Secret of S3_PRUNE_ACCESS_KEY_ID' }),
  BACKUP_DRILL_DIR: def({ group: 'backup', default: '${BACKUP_ROOT}/.l2/drill', parse: p.absPath, doc: 'Where `l2backup drill` restores (then removes) the latest snapshot; needs free space for it (or for its --sample share)' }),

  HEALTH_ENDPOINTS: def({ group: 'health', default: '', parse: p.namedUrls, doc: 'name=url HTTP health endpoints' }),
  HEALTH_SSE_STREAMS: def({ group: 'health', default: '', parse: p.namedUrls, doc: 'name=url SSE streams' }),
  HEALTH_CONFIG: opt({ group: 'health', parse: p.absPath, doc: 'JSON file with per-target settings (timeouts, expected status, headers, SSE windows)' }),
  HEALTH_TIMEOUT_MS: def({ group: 'health', default: '5000', parse: p.int(1, 600_000), doc: 'Per-check timeout' }),
  HEALTH_LATENCY_WARN_MS: def({ group: 'health', default: '1000', parse: p.int(1, 600_000), doc: 'Slower than this is DEGRADED' }),
  HEALTH_SSE_FIRST_EVENT_TIMEOUT_MS: def({ group: 'health', default: '10000', parse: p.int(1, 600_000), doc: 'An SSE stream must send an event or comment within this' }),
  HEALTH_SSE_OBSERVE_MS: def({ group: 'health', default: '0', parse: p.int(0, 600_000), doc: 'Keep listening this long to measure gaps between frames' }),
  HEALTH_SSE_MAX_FRAME_BYTES: def({ group: 'health', default: '1048576', parse: p.int(1024, 1_073_741_824), doc: 'An SSE stream must complete a frame (event or comment) within this many bytes, before the first frame and between frames' }),
  HEALTH_SSE_MAX_GAP_MS: opt({ group: 'health', parse: p.int(1, 600_000), doc: 'Longest allowed gap between frames while observing' }),
  HEALTH_FAILURE_THRESHOLD: def({ group: 'health', default: '2', parse: p.int(1, 100), doc: 'Consecutive failures before DOWN' }),
  HEALTH_SUCCESS_THRESHOLD: def({ group: 'health', default: '1', parse: p.int(1, 100), doc: 'Consecutive successes before UP again' }),
  HEALTH_REMINDER_MINUTES: def({ group: 'health', default: '60', parse: p.int(0, 100_000), doc: 'Reminder while a target stays down (0: none)' }),
  HEALTH_RUN_BUDGET_MS: def({ group: 'health', default: '30000', parse: p.int(100, 3_600_000), doc: 'A run ends within this, whatever the targets do' }),
  HEALTH_BUFFER_WARN: def({ group: 'health', default: '100', parse: p.int(1, 10_000_000), doc: 'More buffered alerts than this is a problem' }),
  BACKUP_MAX_AGE_HOURS: def({ group: 'health', default: '26', parse: p.number(0.01, 100_000), doc: 'The last successful backup must be younger than this' }),
  HEALTHCHECK_PING_URL: opt({ group: 'health', secret: true, parse: p.httpUrl, doc: "Dead-man's switch pinged after each completed run (healthchecks.io style)" }),
  HEALTHCHECK_PING_FAIL: def({ group: 'health', default: '0', parse: p.flag, doc: 'With 1, the HEALTHCHECK_PING_URL ping goes to <url>/fail while a target is down' }),
} as const;

export type SettingName = keyof typeof SETTINGS;

type Parsed<S> = S extends DefaultedSpec<infer T> ? T : S extends OptionalSpec<infer T> ? T | undefined : never;

export type Settings = { -readonly [K in SettingName]: Parsed<(typeof SETTINGS)[K]> };
