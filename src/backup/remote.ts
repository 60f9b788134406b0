/**
 * Remote copies on S3 or any S3-compatible service (MinIO...), in the runbook's layout:
 *   s3://bucket[/prefix]/snapshots/<id>/<source>/<relative path>
 *   s3://bucket[/prefix]/snapshots/<id>/.l2-files.jsonl.gz
 *   s3://bucket[/prefix]/snapshots/<id>/.l2-manifest.json   uploaded last: marks it complete
 * so `aws s3 sync s3://bucket/snapshots/<id>/models/ ./models/` restores a source with the stock
 * CLI. Objects unchanged since the base remote snapshot are copied server-side (CopyObject, or
 * UploadPartCopy in ranges from S3_COPY_PART_THRESHOLD_BYTES up). Every write asks for the
 * configured encryption and object lock (writeProtection); deletes use the prune key if set.
 * The AWS SDK is loaded only here, and only by commands that need it.
 */
import { constants, promises as fs } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config/index.js';
import { L2Error, errorMessage } from '../errors.js';
import { FILES, MANIFEST, isSnapshotId } from './layout.js';
import { md5Base64, newHash, sha256 as sha256Of } from './hash.js';
import { entryBytesKey, entryPath, parseEntries, parseManifest, remoteName, type Entry, type Manifest } from './manifest.js';
import { Slots } from './slots.js';
import { hashParts, partReader, partRanges, type PartRange } from './file-parts.js';
import { LeanGet, type GetAnswer } from './s3-get.js';
import type * as SdkRetry from '@smithy/core/retry';

/** What the SDK's error classifier reads of an error. */
type SdkError = Parameters<typeof SdkRetry.isClockSkewError>[0];

type SDK = typeof import('@aws-sdk/client-s3');

const nothing = () => {};
const SILENT = { trace: nothing, debug: nothing, info: nothing, warn: nothing, error: nothing };

/** Attempts per S3 call (the first one and the retries). */
export const S3_ATTEMPTS = 3;
/** One request's answer may take this many S3_TIMEOUT_MS (it may carry a large part). */
const REQUEST_TIMEOUTS = 4;

/**
 * A snapshot that can never be uploaded as it is: its local copy does not match its manifest,
 * or the server rejects one of its keys for good. The upload round skips it and goes on.
 */
export class UnuploadableError extends L2Error {}

/** S3 error codes that reject one object for good (retrying the same key cannot help). */
const REJECTED_FOR_GOOD = new Set(['KeyTooLongError', 'EntityTooLarge', 'MetadataTooLarge', 'InvalidObjectName']);

function rejectedForGood(err: unknown): string | undefined {
  const e = err as { name?: string; Code?: string };
  const code = e.name ?? e.Code;
  return code && REJECTED_FOR_GOOD.has(code) ? code : undefined;
}

export interface RemoteSettings {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  checksum: 'when_required' | 'when_supported';
  concurrency: number;
  downloadConcurrency: number;
  multipartBytes: number;
  timeoutMs: number;
  /** issue 12: multipart server-side copies, encryption, object lock, a key for deletes */
  copyPartThreshold: number;
  copyPartBytes: number;
  sse?: 'AES256' | 'aws:kms';
  sseKmsKeyId?: string;
  lock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
  pruneCredentials?: { accessKeyId: string; secretAccessKey: string };
}

export function remoteSettings(cfg: Config): RemoteSettings | undefined {
  if (!cfg.BACKUP_BUCKET) return undefined;
  return {
    ...cfg.BACKUP_BUCKET,
    endpoint: cfg.S3_ENDPOINT,
    region: cfg.S3_REGION,
    accessKeyId: cfg.S3_ACCESS_KEY_ID,
    secretAccessKey: cfg.S3_SECRET_ACCESS_KEY,
    checksum: cfg.S3_CHECKSUM ?? (cfg.S3_ENDPOINT ? 'when_required' : 'when_supported'),
    concurrency: cfg.BACKUP_UPLOAD_CONCURRENCY,
    downloadConcurrency: cfg.BACKUP_DOWNLOAD_CONCURRENCY,
    multipartBytes: cfg.BACKUP_MULTIPART_MB * 1024 * 1024,
    timeoutMs: cfg.S3_TIMEOUT_MS,
    copyPartThreshold: cfg.S3_COPY_PART_THRESHOLD_BYTES,
    copyPartBytes: cfg.S3_COPY_PART_BYTES,
    ...(cfg.S3_SSE ? { sse: cfg.S3_SSE } : {}),
    ...(cfg.S3_SSE_KMS_KEY_ID ? { sseKmsKeyId: cfg.S3_SSE_KMS_KEY_ID } : {}),
    ...(cfg.S3_OBJECT_LOCK_MODE && cfg.S3_OBJECT_LOCK_DAYS ? { lock: { mode: cfg.S3_OBJECT_LOCK_MODE, days: cfg.S3_OBJECT_LOCK_DAYS } } : {}),
    ...(cfg.S3_PRUNE_ACCESS_KEY_ID && cfg.S3_PRUNE_SECRET_ACCESS_KEY ? { pruneCredentials: { accessKeyId: cfg.S3_PRUNE_ACCESS_KEY_ID, secretAccessKey: cfg.S3_PRUNE_SECRET_ACCESS_KEY } } : {}),
  };
}

/**
 * What every write asks of the server (issue 12): encryption and object lock. Each PutObject,
 * CreateMultipartUpload and CopyObject carries it: a copy that does not ask again loses it.
 */
export function writeProtection(settings: RemoteSettings, now = Date.now()) {
  return {
    ...(settings.sse ? { ServerSideEncryption: settings.sse } : {}),
    ...(settings.sse === 'aws:kms' && settings.sseKmsKeyId ? { SSEKMSKeyId: settings.sseKmsKeyId } : {}),
    ...(settings.lock ? { ObjectLockMode: settings.lock.mode, ObjectLockRetainUntilDate: new Date(now + settings.lock.days * 86_400_000) } : {}),
  };
}

/** An object that object lock keeps until `until` (a delete refused before then). */
export class LockedError extends L2Error {
  constructor(
    readonly key: string,
    readonly until: string | undefined,
  ) {
    super(`${key} is under object lock${until ? ` until ${until}` : ''}`);
  }
}

/** The key in use may not delete (AccessDenied on a delete of an object no lock holds). */
export class DeleteDeniedError extends L2Error {}

export interface UploadResult {
  bytesSent: number;
  copied: number;
  uploaded: number;
  /** server-side copies that failed and were uploaded instead: how many, and the first reason */
  copyFallback?: { count: number; first: string };
}

export interface UploadOptions {
  id: string;
  dir: string;
  manifest: Manifest;
  entries: Entry[];
  /** the newest complete remote snapshot, for server-side copies */
  base?: { id: string; entries: Entry[] };
  signal: AbortSignal;
  onProgress?: (done: number, total: number, bytesSent: number) => void;
}

/** A pool that runs at most `limit` tasks at once and stops scheduling after the first failure. */
async function pool<T>(items: T[], limit: number, signal: AbortSignal, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      signal.throwIfAborted();
      const item = items[next++]!;
      try {
        await task(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

/** An object whose size is not what its file list says (found by a ranged GET). */
export class ObjectSizeError extends L2Error {}

/** A ranged GET answered with the whole object (the server does not do ranges). */
export class RangeIgnoredError extends L2Error {}

/** An answer whose body stopped before its end (Content-Range right, fewer bytes sent). */
class CutShortError extends L2Error {}

/** How a body that broke off mid-way shows: a reset or closed connection. */
const BODY_BREAKS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

/** A body that broke off mid-way (the headers came, the bytes stopped): the same GET again may well succeed. */
function bodyBrokeOff(err: unknown): boolean {
  if (err instanceof CutShortError) return true;
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return BODY_BREAKS.has(String(e?.code ?? '')) || e?.message === 'aborted';
}

/**
 * Runs one whole GET (request and body) again when its body broke off, up to S3_ATTEMPTS in
 * all, inside the caller's bound. The SDK and the lean GET retry only until the headers come: a
 * reset in the middle of a body would otherwise fail a whole restore. Every consumer starts
 * afresh on each attempt (a new buffer, a new hash, its file truncated).
 */
async function againIfBodyBroke<T>(abortSignal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n >= S3_ATTEMPTS || abortSignal.aborted || !bodyBrokeOff(err)) throw err;
    }
  }
}

/**
 * How many multipart uploads may run at once. lib-storage held every part of its queue whole,
 * plus the one it was assembling and the copy Buffer.concat made of it (issue 14: about 270 MiB
 * at the peak of a first upload). Parts now stream from the file: each part in flight holds
 * about two read chunks (the one buffered, the one being written), and the parts of all
 * uploads together stay within LARGE_UPLOAD_BUFFER_BYTES.
 */
const LARGE_UPLOAD_BUFFER_BYTES = 128 * 1024 * 1024;
/** What one part's read stream holds at a time. */
const PART_READ_CHUNK = 1 << 20;
export const largeUploadsAtOnce = (s: RemoteSettings) => Math.max(1, Math.min(s.concurrency, Math.floor(LARGE_UPLOAD_BUFFER_BYTES / (Math.max(1, Math.min(4, s.concurrency)) * 2 * PART_READ_CHUNK))));

/** Resolves once a part's stream has passed its last check (ended), rejects when it failed. */
function checked(body: Readable): Promise<void> {
  if (body.readableEnded) return Promise.resolve();
  body.resume(); // nothing is left but the end (the server has all the bytes): let the check run
  return new Promise((resolve, reject) => {
    body.once('end', resolve);
    body.once('error', reject);
    body.once('close', () => (body.readableEnded ? resolve() : reject(new L2Error('a part stream closed before its end'))));
  });
}

/**
 * Whether a failed part is worth sending again: no answer at all (reset, timeout), a server
 * error, throttling, or bytes damaged on the way (BadDigest: they did not have the MD5 sent
 * with them; the file's bytes were checked as they were read). Not a refusal (access, a
 * missing upload, a rejected key).
 */
function retryable(err: unknown, clockSkew: (e: SdkError) => boolean): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  // Refused for its time: the client has moved its clock offset to the server's Date (on this
  // answer or another part's), so the part signed again passes; the SDK retries no streamed body.
  if (typeof err === 'object' && err !== null && clockSkew(err as SdkError)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return e.name !== 'AbortError';
  return status >= 500 || status === 429 || e.name === 'RequestTimeout' || e.name === 'SlowDown' || e.name === 'BadDigest';
}

/** An S3 call that ran past its overall deadline (body included). */
export class S3DeadlineError extends L2Error {}

/**
 * Opens a file of a local snapshot for upload without following what sits there now: never a
 * symlink (O_NOFOLLOW), never blocking on a FIFO or device (O_NONBLOCK), and only a regular file
 * of the size the file list records. Anything else means the snapshot folder was changed under
 * it: the snapshot is damaged and cannot be uploaded.
 */
async function openSnapshotFile(path: string | Buffer, size: number | undefined, what: string): Promise<fs.FileHandle> {
  // lstat first, so a FIFO or device is not even opened (opening one can wake a writer);
  // the fstat below checks that what was opened is what was looked at.
  let seen: Awaited<ReturnType<typeof fs.lstat>>;
  try {
    seen = await fs.lstat(path);
  } catch (err) {
    throw new UnuploadableError(`${what} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); not uploading it`);
  }
  if (seen.isSymbolicLink()) throw new UnuploadableError(`${what} is a symlink now; not uploading a damaged copy`);
  if (!seen.isFile()) throw new UnuploadableError(`${what} is no longer a regular file; not uploading a damaged copy`);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UnuploadableError(`${what} cannot be opened (${code === 'ELOOP' ? 'it is a symlink now' : code ?? 'error'}); not uploading it`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.ino !== seen.ino || st.dev !== seen.dev) throw new UnuploadableError(`${what} is no longer a regular file; not uploading a damaged copy`);
    if (size !== undefined && st.size !== size) throw new UnuploadableError(`${what} has ${st.size} bytes, its file list says ${size}; not uploading a damaged copy`);
    return fh;
  } catch (err) {
    await fh.close().catch(() => {});
    throw err;
  }
}

async function readSnapshotFile(path: string | Buffer, size: number | undefined, what: string): Promise<Buffer> {
  const fh = await openSnapshotFile(path, size, what);
  try {
    return await fh.readFile();
  } catch (err) {
    throw new UnuploadableError(`${what} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); not uploading it`);
  } finally {
    await fh.close().catch(() => {});
  }
}

export class Remote {
  readonly base: string;

  private constructor(
    readonly settings: RemoteSettings,
    readonly client: S3Client,
    private readonly sdk: SDK,
    /** the client for deletes: the prune key's when one is set (issue 12) */
    private readonly deleteClient: S3Client = client,
    private readonly makePartsClient?: () => S3Client,
  ) {
    this.base = settings.prefix ? `${settings.prefix}/snapshots/` : 'snapshots/';
  }

  static async open(settings: RemoteSettings): Promise<Remote> {
    // Node 20 is what these machines run (README); the SDK's multi-line warning about it would
    // otherwise land in every cron log.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const sdk = await import('@aws-sdk/client-s3');
    const credentials = settings.accessKeyId && settings.secretAccessKey ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey } : undefined;
    const client = Remote.makeClient(sdk, settings, credentials);
    const deleteClient = settings.pruneCredentials ? Remote.makeClient(sdk, settings, settings.pruneCredentials) : client;
    return new Remote(settings, client, sdk, deleteClient, () => Remote.makeClient(sdk, settings, credentials, true));
  }

  private static makeClient(sdk: SDK, settings: RemoteSettings, credentials: { accessKeyId: string; secretAccessKey: string } | undefined, quiet = false): S3Client {
    return new sdk.S3Client({
      region: settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
      ...(credentials ? { credentials } : {}),
      requestChecksumCalculation: settings.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      responseChecksumValidation: settings.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      maxAttempts: S3_ATTEMPTS,
      ...(quiet ? { logger: SILENT } : {}),
      // Every call is bounded: a connection within min(10 s, S3_TIMEOUT_MS), never more than
      // S3_TIMEOUT_MS of silence on the socket (a server that accepts and never answers), an
      // answer within REQUEST_TIMEOUTS x S3_TIMEOUT_MS (room for a large part going up), and
      // S3_ATTEMPTS attempts in all. Without throwOnRequestTimeout the SDK only logs a warning.
      requestHandler: {
        connectionTimeout: Math.min(10_000, settings.timeoutMs),
        socketTimeout: settings.timeoutMs,
        requestTimeout: settings.timeoutMs * REQUEST_TIMEOUTS,
        throwOnRequestTimeout: true,
      },
    });
  }

  private partsClientMade: S3Client | undefined;

  /**
   * The client for streamed upload parts. With the default (no-op) logger the SDK writes to the
   * console whenever a streamed request fails ("non-retryable streaming request"), and these
   * parts are retried by uploadPart itself; a logger of our own silences it. Not on the main
   * client: with any logger but the no-op one the SDK copies every request and answer to log them.
   */
  private get partsClient(): S3Client {
    return (this.partsClientMade ??= this.makePartsClient?.() ?? this.client);
  }

  /** One call's whole bound: S3_ATTEMPTS answers of REQUEST_TIMEOUTS x S3_TIMEOUT_MS each. */
  get callBoundMs(): number {
    return this.settings.timeoutMs * REQUEST_TIMEOUTS * S3_ATTEMPTS;
  }

  /**
   * Runs one S3 call, reading its body included, under an overall deadline (callBoundMs plus
   * `extraMs`) and the caller's signal. The SDK's own request timeout stops at the response
   * headers; a body that drips a few bytes at a time would otherwise hold the run (and the lock)
   * for as long as the server likes. The deadline aborts the request (and so its body stream).
   */
  async bounded<T>(what: string, fn: (signal: AbortSignal, extend: (ms: number) => void) => Promise<T>, outer?: AbortSignal): Promise<T> {
    outer?.throwIfAborted();
    const ac = new AbortController();
    const started = Date.now();
    let ms = this.callBoundMs;
    const expired = new S3DeadlineError(`S3 ${what} took longer than its bound (${REQUEST_TIMEOUTS} x S3_TIMEOUT_MS per attempt, ${S3_ATTEMPTS} attempts, plus the same per BACKUP_MULTIPART_MB of body); the server answers too slowly`);
    let onDeadline!: () => void;
    const deadline = new Promise<never>((_, reject) => (onDeadline = () => reject(expired)));
    deadline.catch(() => {});
    const fire = () => {
      onDeadline();
      ac.abort(expired);
    };
    let timer = setTimeout(fire, ms);
    // Once the size of a body is known, it earns its allowance (never for an unbounded time).
    const extend = (extra: number) => {
      if (ac.signal.aborted || extra <= 0) return;
      ms += extra;
      clearTimeout(timer);
      timer = setTimeout(fire, Math.max(0, started + ms - Date.now()));
    };
    const onOuter = () => ac.abort(outer!.reason);
    outer?.addEventListener('abort', onOuter, { once: true });
    try {
      return await Promise.race([fn(ac.signal, extend), deadline]);
    } catch (err) {
      if (ac.signal.reason === expired && !outer?.aborted) throw expired;
      throw err;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    }
  }

  private lean: Promise<LeanGet | undefined> | undefined;

  /** One GET (of `range` when given): the lean signed request (s3-get.ts), or the SDK's command where that does not apply. */
  private async getObject(key: string, range: string | undefined, abortSignal: AbortSignal): Promise<GetAnswer> {
    this.lean ??= LeanGet.make(this.client, this.settings.bucket, this.settings.endpoint, S3_ATTEMPTS);
    const lean = await this.lean;
    if (lean) return lean.get(key, range, abortSignal);
    const res = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.settings.bucket, Key: key, ...(range ? { Range: range } : {}) }), { abortSignal });
    return { ...res, Body: res.Body as Readable };
  }

  /** Extra time for a body of `bytes`: each multipartBytes of it gets one answer's allowance. */
  private bodyAllowance(bytes: number | undefined): number {
    return Math.ceil((bytes ?? 0) / Math.max(1, this.settings.multipartBytes)) * this.settings.timeoutMs * REQUEST_TIMEOUTS;
  }

  get url(): string {
    return `s3://${this.settings.bucket}/${this.base}`;
  }

  key(id: string, rel: string): string {
    return `${this.base}${id}/${rel}`;
  }

  sourceKey(id: string, source: string, p: string): string {
    return this.key(id, `${source}/${p}`);
  }

  /** One line an operator can act on: what failed and how to check it. */
  describe(err: unknown): string {
    const e = err as { name?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
    const name = e.name ?? e.Code ?? e.code ?? 'Error';
    const where = this.settings.endpoint ? ` --endpoint-url ${this.settings.endpoint}` : '';
    const check = `check with 'l2backup check-remote' or 'aws s3 ls s3://${this.settings.bucket}/${where}'`;
    const words: Record<string, string> = {
      ECONNREFUSED: `the S3 endpoint ${this.settings.endpoint ?? ''} refused the connection (is it running?)`,
      ENOTFOUND: `the S3 endpoint's host name does not resolve`,
      ECONNRESET: 'the connection to S3 was reset',
      ETIMEDOUT: 'the S3 endpoint timed out',
      TimeoutError: 'the S3 endpoint timed out',
      InvalidAccessKeyId: 'S3 rejected the access key (S3_ACCESS_KEY_ID)',
      SignatureDoesNotMatch: 'S3 rejected the signature: S3_SECRET_ACCESS_KEY looks wrong',
      AccessDenied: 'S3 denied access: the credentials lack permission on the bucket',
      NoSuchBucket: `the bucket ${this.settings.bucket} does not exist`,
      Forbidden: 'S3 answered 403 Forbidden: check the credentials',
      NotFound: `not found on S3 (bucket ${this.settings.bucket})`,
      CredentialsProviderError: 'no S3 credentials: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY',
    };
    const code = (e as { code?: string }).code;
    const text = words[name] ?? (code ? words[code] : undefined) ?? `${name}${e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : ''}: ${errorMessage(err).slice(0, 200)}`;
    return `${text}; ${check}`;
  }

  /** Snapshot ids under snapshots/, one "folder" per id, via Delimiter (not one request per object). */
  async listIds(): Promise<string[]> {
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const t = token;
      const res = await this.bounded('listing', (abortSignal) => this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: this.base, Delimiter: '/', ContinuationToken: t }), { abortSignal }));
      for (const p of res.CommonPrefixes ?? []) {
        const id = p.Prefix?.slice(this.base.length).replace(/\/$/, '');
        if (id && isSnapshotId(id)) ids.push(id);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return ids.sort();
  }

  async listKeys(prefix: string): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const t = token;
      const res = await this.bounded('listing', (abortSignal) => this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: prefix, ContinuationToken: t }), { abortSignal }));
      for (const o of res.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0 });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.bounded('HEAD', (abortSignal) => this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.settings.bucket, Key: key }), { abortSignal }));
      return true;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return false;
      throw err;
    }
  }

  /**
   * GETs an object and hands its body to `consume`, all under one deadline: callBoundMs, plus
   * one answer's allowance per multipartBytes of the object's size (a large download may take
   * longer, a dripping one may not take for ever).
   */
  private async getWith<T>(key: string, consume: (body: Readable) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.bounded(
      `GET ${key.slice(0, 120)}`,
      (abortSignal, extend) =>
        againIfBodyBroke(abortSignal, async () => {
          const res = await this.getObject(key, undefined, abortSignal);
          extend(this.bodyAllowance(res.ContentLength));
          const body = res.Body as Readable;
          const stop = () => body.destroy(abortSignal.reason instanceof Error ? abortSignal.reason : new Error('aborted'));
          abortSignal.addEventListener('abort', stop, { once: true });
          try {
            return await consume(body);
          } finally {
            abortSignal.removeEventListener('abort', stop);
          }
        }),
      signal,
    );
  }

  async getBuffer(key: string): Promise<Buffer> {
    return this.getWith(key, async (body) => {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(Buffer.from(c as Buffer));
      return Buffer.concat(chunks);
    });
  }

  /**
   * Bytes `start` to `end` (inclusive) of an object of `total` bytes, under one bounded call:
   * exactly those bytes, or an error (also when the server says the object has another size).
   */
  async getRange(key: string, start: number, end: number, total: number, signal?: AbortSignal): Promise<Buffer> {
    return this.bounded(
      `GET ${key.slice(0, 120)} bytes ${start}-${end}`,
      (abortSignal, extend) => againIfBodyBroke(abortSignal, async () => {
        const res = await this.getObject(key, `bytes=${start}-${end}`, abortSignal).catch((err: unknown) => {
          const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
          if (e.name === 'InvalidRange' || e.$metadata?.httpStatusCode === 416) throw new ObjectSizeError(`S3 object ${key.slice(0, 120)} is shorter than its file list says (${total} bytes): bytes ${start}-${end} are not there`);
          throw err;
        });
        extend(this.bodyAllowance(res.ContentLength));
        const body = res.Body as Readable;
        const stop = () => body.destroy(abortSignal.reason instanceof Error ? abortSignal.reason : new Error('aborted'));
        abortSignal.addEventListener('abort', stop, { once: true });
        try {
          // A server may ignore Range and send the whole object (200): the caller falls back to one GET.
          if (res.$metadata.httpStatusCode !== 206 || res.ContentRange === undefined) throw new RangeIgnoredError(`S3 ignored the Range header of a GET of ${key.slice(0, 120)} (HTTP ${res.$metadata.httpStatusCode ?? '?'} without Content-Range)`);
          const got = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange);
          const size = Number(got?.[3] ?? NaN);
          if (size !== total) throw new ObjectSizeError(`S3 object ${key.slice(0, 120)} has ${Number.isNaN(size) ? 'an unknown number of' : size} bytes (Content-Range ${res.ContentRange}), its file list says ${total}`);
          // Other bytes than those asked for would hash as damaged content: the server's fault is named instead.
          if (Number(got![1]) !== start || Number(got![2]) !== end) throw new L2Error(`S3 sent Content-Range ${res.ContentRange} for a request of bytes ${start}-${end} of ${key.slice(0, 120)}: the server (or a proxy) mishandles ranged GETs; nothing of that answer was used`);
          const want = end - start + 1;
          const buf = Buffer.allocUnsafe(want);
          let at = 0;
          for await (const c of body) {
            const chunk = c as Buffer;
            if (at + chunk.length > want) throw new L2Error(`S3 sent more than the ${want} bytes asked for (${key.slice(0, 120)} bytes ${start}-${end}, Content-Range ${res.ContentRange}): the server (or a proxy) mishandles ranged GETs; nothing of that answer was used`);
            chunk.copy(buf, at);
            at += chunk.length;
          }
          // The Content-Range gave the right size: the object is whole, the answer was cut short.
          if (at !== want) throw new CutShortError(`S3 sent ${at} of the ${want} bytes asked for (${key.slice(0, 120)} bytes ${start}-${end}, Content-Range ${res.ContentRange}): the answer was cut short (server or proxy); nothing of it was used`);
          return buf;
        } catch (err) {
          body.destroy(); // an answer refused before its body was read must not hold its connection
          throw err;
        } finally {
          abortSignal.removeEventListener('abort', stop);
        }
      }),
      signal,
    );
  }

  /**
   * A small object's bytes in memory (restore's small files: no temp file is made before its
   * hash is known), at most `max` + 1 of them: a larger answer is cut there, and its size and
   * hash then differ from the file list's.
   */
  async getSmall(key: string, max: number, signal?: AbortSignal): Promise<Buffer> {
    return this.getWith(
      key,
      async (body) => {
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const c of body) {
          chunks.push(c as Buffer);
          n += (c as Buffer).length;
          if (n > max) {
            body.destroy();
            break;
          }
        }
        return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      },
      signal,
    );
  }

  async getText(key: string): Promise<string> {
    return (await this.getBuffer(key)).toString('utf8');
  }

  async isComplete(id: string): Promise<boolean> {
    return this.exists(this.key(id, MANIFEST));
  }

  async readManifest(id: string): Promise<Manifest> {
    return parseManifest(await this.getText(this.key(id, MANIFEST)), `s3://${this.settings.bucket}/${this.key(id, MANIFEST)}`);
  }

  /** The file list, checked against the manifest's hash of it. */
  async readEntries(id: string, manifest: Manifest): Promise<Entry[]> {
    const text = gunzipSync(await this.getBuffer(this.key(id, FILES))).toString('utf8');
    if (sha256Of(text) !== manifest.filesSha256) throw new L2Error(`remote file list of ${id} does not match its manifest; the remote snapshot is damaged (run 'l2backup verify ${id} --remote')`);
    return parseEntries(text, `s3 ${id}/${FILES}`);
  }

  /** Downloads an object to `dest`, returning its sha256 and size (not fsynced: the restore syncs once at its end). */
  async download(key: string, dest: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
    return this.getWith(key, (body) => this.saveBody(body, dest), signal);
  }

  private async saveBody(body: Readable, dest: string): Promise<{ sha256: string; size: number }> {
    const hash = newHash();
    let size = 0;
    const fh = await fs.open(dest, 'w', 0o600);
    try {
      await pipeline(
        body,
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            size += chunk.length;
            fh.write(chunk).then(() => cb(), cb);
          },
        }),
      );
    } finally {
      await fh.close();
    }
    return { sha256: hash.digest('hex'), size };
  }

  /** Hashes an object without storing it. */
  async hashObject(key: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
    return this.getWith(
      key,
      async (body) => {
        const hash = newHash();
        let size = 0;
        for await (const c of body) {
          hash.update(c as Buffer);
          size += (c as Buffer).length;
        }
        return { sha256: hash.digest('hex'), size };
      },
      signal,
    );
  }

  /**
   * What the remote holds under `id`: nothing complete ('none'), the snapshot `manifest`
   * describes ('same'), or a complete different snapshot ('other': the clock moved back and an
   * id was reused; it must never be overwritten). Without a local manifest, complete is 'same'.
   */
  async holds(id: string, manifest: Manifest | undefined): Promise<'none' | 'same' | 'other'> {
    if (!(await this.isComplete(id))) return 'none';
    if (!manifest) return 'same';
    let there: Manifest;
    try {
      there = await this.readManifest(id);
    } catch (err) {
      if (err instanceof L2Error) return 'other';
      throw err;
    }
    return there.filesSha256 === manifest.filesSha256 && there.finishedAt === manifest.finishedAt ? 'same' : 'other';
  }

  /**
   * Deletes a remote snapshot, manifest first so that it never looks complete half-deleted, with
   * the prune key when one is set. A delete refused for an object under object lock throws
   * LockedError (with the date); one refused for want of permission throws DeleteDeniedError.
   */
  async deleteSnapshot(id: string): Promise<void> {
    const manifestKey = this.key(id, MANIFEST);
    try {
      await this.bounded('DELETE', (abortSignal) => this.deleteClient.send(new this.sdk.DeleteObjectCommand({ Bucket: this.settings.bucket, Key: manifestKey }), { abortSignal }));
    } catch (err) {
      const e = err as { name?: string; Code?: string };
      if ((e.name ?? e.Code) === 'AccessDenied') throw await this.whyDenied(manifestKey);
      throw err;
    }
    const keys = (await this.listKeys(`${this.base}${id}/`)).map((o) => o.key);
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const res = await this.bounded('DeleteObjects', (abortSignal) => this.deleteClient.send(new this.sdk.DeleteObjectsCommand({ Bucket: this.settings.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }), { abortSignal }));
      const denied = res.Errors?.find((x) => x.Code === 'AccessDenied');
      if (denied?.Key) throw await this.whyDenied(denied.Key);
      if (res.Errors?.length) throw new L2Error(`could not delete ${res.Errors.length} object(s) of remote snapshot ${id}: ${res.Errors[0]?.Code ?? 'error'}`);
    }
  }

  /**
   * The date object lock keeps `key` until, when a lock holds it now (HEAD; undefined when none
   * or unknown). Asked with the delete key: S3 shows the lock only to a key with
   * s3:GetObjectRetention, which the README grants to the prune key, not the nightly's.
   */
  async lockedUntil(key: string): Promise<string | undefined> {
    const head = await this.bounded('HEAD', (abortSignal) => this.deleteClient.send(new this.sdk.HeadObjectCommand({ Bucket: this.settings.bucket, Key: key }), { abortSignal })).catch(() => undefined);
    const until = head?.ObjectLockRetainUntilDate;
    return until && until.getTime() > Date.now() ? until.toISOString() : undefined;
  }

  /** A delete of `key` was refused: under object lock (until when), or the key may not delete. */
  private async whyDenied(key: string): Promise<L2Error> {
    const until = await this.lockedUntil(key);
    if (until) return new LockedError(key, until);
    const which = this.settings.pruneCredentials ? 'S3_PRUNE_ACCESS_KEY_ID' : 'S3_ACCESS_KEY_ID';
    return new DeleteDeniedError(`S3 denied the delete of ${key.slice(0, 120)}: the key in ${which} may not delete objects`);
  }

  /** The bucket's default encryption ('none' when it has none), for check-remote. */
  async bucketEncryption(): Promise<string> {
    try {
      const res = await this.bounded('GetBucketEncryption', (abortSignal) => this.client.send(new this.sdk.GetBucketEncryptionCommand({ Bucket: this.settings.bucket }), { abortSignal }));
      const rule = res.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault;
      if (!rule?.SSEAlgorithm) return 'none';
      return rule.KMSMasterKeyID ? `${rule.SSEAlgorithm} (key ${rule.KMSMasterKeyID})` : rule.SSEAlgorithm;
    } catch (err) {
      const e = err as { name?: string; Code?: string };
      if ((e.name ?? e.Code) === 'ServerSideEncryptionConfigurationNotFoundError') return 'none';
      throw err;
    }
  }

  async putSmall(key: string, data: Buffer, sha256: string, signal: AbortSignal): Promise<void> {
    await this.rejectingForGood(key, () =>
      this.bounded(
        `PUT ${key.slice(0, 120)}`,
        (abortSignal) =>
          this.client.send(
            new this.sdk.PutObjectCommand({
              Bucket: this.settings.bucket,
              Key: key,
              Body: data,
              ContentLength: data.length,
              // The server checks the body against this: a corrupted upload is refused, not stored.
              ContentMD5: md5Base64(data),
              Metadata: { sha256 },
              ...writeProtection(this.settings),
            }),
            { abortSignal },
          ),
        signal,
      ),
    );
  }

  private async rejectingForGood<T>(key: string, put: () => Promise<T>): Promise<T> {
    try {
      return await put();
    } catch (err) {
      const code = rejectedForGood(err);
      if (code) throw new UnuploadableError(`S3 rejects the key ${key.slice(0, 120)}${key.length > 120 ? '…' : ''} for good (${code})`);
      throw err;
    }
  }

  /**
   * A multipart upload of a large file, its parts read from the file by range with a known
   * length (file-parts.ts): no part is held whole in memory. The file is hashed in order first
   * (against the manifest), then each part again as it is sent (against that first pass): a
   * damaged or changed local copy fails before CompleteMultipartUpload, and the multipart upload
   * is aborted. It never becomes an object that counts (or that later snapshots copy server-side).
   */
  async putLarge(key: string, path: string | Buffer, size: number, sha256: string, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
    const { bucket } = this.settings;
    const ranges = partRanges(size, Math.max(this.settings.multipartBytes, Math.ceil(size / 9000)));
    const fh = await openSnapshotFile(path, size, `local file ${path}`);
    const unreadable = (err: unknown) => new UnuploadableError(`local file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); not uploading it`);
    const mismatch = (seen: string) => new UnuploadableError(`local file ${path} no longer matches its manifest (${seen}; expected ${size} bytes, ${sha256.slice(0, 12)}…); not uploading a damaged copy`);
    try {
      const crc32 = (await this.client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
      // Without the SDK's CRC32 a part would carry nothing the server checks its bytes against:
      // one altered on the way would be stored, and the upload called whole.
      const read = await hashParts(fh, ranges, !crc32).catch((err: unknown) => Promise.reject(unreadable(err)));
      if (read.size !== size || read.sha256 !== sha256) throw mismatch(`${read.size} bytes, sha256 ${read.sha256.slice(0, 12)}…`);
      const created = await this.rejectingForGood(key, () =>
        this.bounded('CreateMultipartUpload', (abortSignal) => this.client.send(new this.sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { sha256 }, ...(crc32 ? { ChecksumAlgorithm: 'CRC32' } : {}), ...writeProtection(this.settings) }), { abortSignal }), signal),
      );
      const uploadId = created.UploadId!;
      const parts: { PartNumber: number; ETag: string; ChecksumCRC32?: string }[] = [];
      try {
        await pool(ranges, Math.max(1, Math.min(4, this.settings.concurrency)), signal, async (r) => {
          const res = await this.uploadPart(key, uploadId, fh, r, read.parts[r.n - 1]!, read.md5s[r.n - 1], () => mismatch(`part ${r.n} changed while it was sent`), unreadable, signal);
          if (!res.ETag) throw new L2Error(`UploadPart of part ${r.n} of ${key.slice(0, 120)} returned no ETag`);
          parts.push({ PartNumber: r.n, ETag: res.ETag, ...(res.ChecksumCRC32 ? { ChecksumCRC32: res.ChecksumCRC32 } : {}) });
          onBytes(r.end - r.start);
        });
        parts.sort((a, b) => a.PartNumber - b.PartNumber);
        await this.bounded('CompleteMultipartUpload', (abortSignal) => this.client.send(new this.sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal }), signal);
      } catch (err) {
        await this.bounded('AbortMultipartUpload', (abortSignal) => this.client.send(new this.sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal })).catch(() => {});
        throw err;
      }
    } finally {
      await fh.close().catch(() => {});
    }
    const head = await this.bounded('HEAD', (abortSignal) => this.client.send(new this.sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }));
    if (head.ContentLength !== size) {
      // Not left there: it carries the file's sha256 in its metadata, and `aws s3 sync` of the
      // snapshot's folder (the runbook's command) would fetch it as the file. (Best effort: a
      // key that may not delete, or object lock, keeps it; the run fails either way.)
      await this.bounded('DELETE', (abortSignal) => this.deleteClient.send(new this.sdk.DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })).catch(() => {});
      throw new L2Error(`uploaded ${key} has ${head.ContentLength} bytes on S3, expected ${size} (removed); the upload will be retried next run`);
    }
  }

  /**
   * One part, streamed from its range of the file and checked as it goes. The SDK does not
   * retry a streamed body (it cannot read it again), so the part is tried up to S3_ATTEMPTS
   * times here, each time from a fresh read of its range, within one bound for the part.
   */
  private async uploadPart(key: string, uploadId: string, fh: fs.FileHandle, r: PartRange, partSha256: string, contentMd5: string | undefined, mismatch: () => UnuploadableError, unreadable: (err: unknown) => UnuploadableError, signal: AbortSignal) {
    return this.bounded(
      `UploadPart ${r.n} of ${key.slice(0, 120)}`,
      async (abortSignal, extend) => {
        extend(this.bodyAllowance(r.end - r.start));
        const { isClockSkewError } = await import('@smithy/core/retry');
        for (let n = 1; ; n++) {
          // Fails this attempt's request at once when the bytes are not the ones hashed before.
          const attempt = new AbortController();
          const stop = () => attempt.abort(abortSignal.reason);
          abortSignal.addEventListener('abort', stop, { once: true });
          let damaged: UnuploadableError | undefined;
          const body = partReader(fh, r, partSha256, PART_READ_CHUNK, () => (damaged = mismatch()), (err) => (damaged = unreadable(err)));
          body.on('error', (err) => attempt.abort(err));
          try {
            const res = await this.partsClient.send(new this.sdk.UploadPartCommand({ Bucket: this.settings.bucket, Key: key, UploadId: uploadId, PartNumber: r.n, Body: body, ContentLength: r.end - r.start, ...(contentMd5 ? { ContentMD5: contentMd5 } : {}) }), { abortSignal: attempt.signal });
            // The server may answer once it has its Content-Length of bytes, before the last
            // check ran: the part counts only once its bytes were checked whole.
            await checked(body);
            return res;
          } catch (err) {
            if (damaged) throw damaged;
            if (n >= S3_ATTEMPTS || abortSignal.aborted || !retryable(err, isClockSkewError)) throw err;
          } finally {
            abortSignal.removeEventListener('abort', stop);
            body.destroy();
          }
        }
      },
      signal,
    );
  }

  async copy(fromKey: string, toKey: string, signal: AbortSignal): Promise<void> {
    await this.bounded(
      'CopyObject',
      (abortSignal) =>
        this.client.send(
          new this.sdk.CopyObjectCommand({
            Bucket: this.settings.bucket,
            Key: toKey,
            CopySource: `${this.settings.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`,
            MetadataDirective: 'COPY',
            ...writeProtection(this.settings),
          }),
          { abortSignal },
        ),
      signal,
    );
  }

  /**
   * A server-side copy of a large object in parts (CreateMultipartUpload, UploadPartCopy with
   * x-amz-copy-source-range, CompleteMultipartUpload): CopyObject stops at 5 GiB. The source must
   * be the object the manifest describes: its size, and the sha256 recorded on it at upload.
   */
  async copyLarge(fromKey: string, toKey: string, size: number, sha256: string, signal: AbortSignal): Promise<void> {
    const { bucket } = this.settings;
    const head = await this.bounded('HEAD', (abortSignal) => this.client.send(new this.sdk.HeadObjectCommand({ Bucket: bucket, Key: fromKey }), { abortSignal }), signal);
    if (head.ContentLength !== size || head.Metadata?.sha256 !== sha256) {
      throw new L2Error(`the base object ${fromKey.slice(0, 120)} is not the one the manifest describes (${head.ContentLength} bytes, recorded sha256 ${(head.Metadata?.sha256 ?? 'none').slice(0, 12)}; expected ${size} bytes, ${sha256.slice(0, 12)}…)`);
    }
    const created = await this.bounded('CreateMultipartUpload', (abortSignal) => this.client.send(new this.sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: toKey, Metadata: { sha256 }, ...writeProtection(this.settings) }), { abortSignal }), signal);
    const uploadId = created.UploadId!;
    const copySource = `${bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`;
    // At most 10,000 parts (S3's limit), each at least S3_COPY_PART_BYTES.
    const partBytes = Math.max(this.settings.copyPartBytes, Math.ceil(size / 10_000));
    const ranges = Array.from({ length: Math.max(1, Math.ceil(size / partBytes)) }, (_, i) => ({ n: i + 1, first: i * partBytes, last: Math.min(size, (i + 1) * partBytes) - 1 }));
    const etags: { PartNumber: number; ETag: string }[] = [];
    try {
      await pool(ranges, Math.max(1, Math.min(4, this.settings.concurrency)), signal, async (r) => {
        const res = await this.bounded(
          'UploadPartCopy',
          (abortSignal) => this.client.send(new this.sdk.UploadPartCopyCommand({ Bucket: bucket, Key: toKey, UploadId: uploadId, PartNumber: r.n, CopySource: copySource, CopySourceRange: `bytes=${r.first}-${r.last}` }), { abortSignal }),
          signal,
        );
        if (!res.CopyPartResult?.ETag) throw new L2Error(`UploadPartCopy of part ${r.n} of ${toKey.slice(0, 120)} returned no ETag`);
        etags.push({ PartNumber: r.n, ETag: res.CopyPartResult.ETag });
      });
      etags.sort((a, b) => a.PartNumber - b.PartNumber);
      await this.bounded('CompleteMultipartUpload', (abortSignal) => this.client.send(new this.sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: toKey, UploadId: uploadId, MultipartUpload: { Parts: etags } }), { abortSignal }), signal);
    } catch (err) {
      await this.bounded('AbortMultipartUpload', (abortSignal) => this.client.send(new this.sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: toKey, UploadId: uploadId }), { abortSignal })).catch(() => {});
      throw err;
    }
    const done = await this.bounded('HEAD', (abortSignal) => this.client.send(new this.sdk.HeadObjectCommand({ Bucket: bucket, Key: toKey }), { abortSignal }), signal);
    if (done.ContentLength !== size) throw new L2Error(`copied ${toKey.slice(0, 120)} has ${done.ContentLength} bytes on S3, expected ${size}`);
  }

  /** Uploads a local snapshot: objects (copied server-side when unchanged), file list, manifest last. */
  async uploadSnapshot(opts: UploadOptions): Promise<UploadResult> {
    const result: UploadResult = { bytesSent: 0, copied: 0, uploaded: 0 };
    const baseSha = new Map<string, string>();
    for (const e of opts.base?.entries ?? []) if (e.t === 'f' && e.sha256) baseSha.set(entryBytesKey(e), e.sha256);
    const files = opts.entries.filter((e) => e.t === 'f');
    let done = 0;
    const largeSlots = new Slots(largeUploadsAtOnce(this.settings));
    await pool(files, this.settings.concurrency, opts.signal, async (e) => {
      const key = this.sourceKey(opts.id, e.s, remoteName(e));
      if (opts.base && baseSha.get(entryBytesKey(e)) === e.sha256) {
        const from = this.sourceKey(opts.base.id, e.s, remoteName(e));
        try {
          if ((e.size ?? 0) >= this.settings.copyPartThreshold) await this.copyLarge(from, key, e.size ?? 0, e.sha256!, opts.signal);
          else await this.copy(from, key, opts.signal);
          result.copied++;
          opts.onProgress?.(++done, files.length, result.bytesSent);
          return;
        } catch (err) {
          if (opts.signal.aborted) throw err;
          // The base object is gone or the server refuses copies: upload instead, and say so
          // (the caller reports it once per run and records it).
          const why = `${e.s}/${e.p}: ${err instanceof L2Error ? err.message : this.describe(err).split(';')[0]}`;
          result.copyFallback = { count: (result.copyFallback?.count ?? 0) + 1, first: result.copyFallback?.first ?? why };
        }
      }
      const path = Buffer.concat([Buffer.from(`${join(opts.dir, e.s)}/`), entryPath(e)]);
      const size = e.size ?? 0;
      if (size >= this.settings.multipartBytes) {
        await largeSlots.acquire();
        try {
          await this.putLarge(key, path, size, e.sha256!, opts.signal, (n) => (result.bytesSent += n));
        } finally {
          largeSlots.release();
        }
      } else {
        const data = await readSnapshotFile(path, size, `local snapshot ${opts.id} file ${e.s}/${e.p}`);
        // The bytes checked are the bytes sent (and the server checks them against Content-MD5).
        if (data.length !== size || sha256Of(data) !== e.sha256) {
          throw new UnuploadableError(`local snapshot ${opts.id} file ${e.s}/${e.p} no longer matches its manifest; not uploading a damaged copy (run 'l2backup verify ${opts.id}')`);
        }
        await this.putSmall(key, data, e.sha256!, opts.signal);
        result.bytesSent += data.length;
      }
      result.uploaded++;
      opts.onProgress?.(++done, files.length, result.bytesSent);
    });
    const list = await readSnapshotFile(join(opts.dir, FILES), undefined, `local snapshot ${opts.id} file list`);
    await this.putSmall(this.key(opts.id, FILES), list, sha256Of(list), opts.signal);
    const manifest = await readSnapshotFile(join(opts.dir, MANIFEST), undefined, `local snapshot ${opts.id} manifest`);
    await this.putSmall(this.key(opts.id, MANIFEST), manifest, sha256Of(manifest), opts.signal);
    result.bytesSent += list.length + manifest.length;
    return result;
  }

  destroy(): void {
    this.client.destroy();
    if (this.deleteClient !== this.client) this.deleteClient.destroy();
    if (this.partsClientMade && this.partsClientMade !== this.client) this.partsClientMade.destroy();
  }
}
