/**
 * Issue 12 §3-5 against the real dev S3 server (scripts/dev-s3-server.cjs) and the built
 * l2backup: large unchanged objects copied server-side in parts (UploadPartCopy), the fallback
 * to an upload said once, server-side encryption and object lock asked on every write (seen by a
 * recording proxy and by the stock AWS CLI), check-remote's bucket encryption, object lock
 * holding a remote prune, and a nightly key that may not delete.
 */
import { readFileSync, writeFileSync, appendFileSync, existsSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { run } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { withS3Server, remoteSandbox, type TestS3 } from '../helpers/s3.js';
import { withFaultProxy } from '../helpers/fault-proxy.js';
import { fakeTimeEnv as at } from '../helpers/faketime.js';

const MiB = 1024 * 1024;

/** plain: stock behaviour; strict: bucket encryption on, no UploadPartCopy, a nightly key that may not delete */
const plain = withS3Server();
const strict = withS3Server('l2trading-strict', {
  DEV_S3_BUCKET_ENCRYPTION: 'AES256',
  DEV_S3_NO_UPLOAD_PART_COPY: '1',
  DEV_S3_EXTRA_KEYS: 'PRUNER:prune-secret',
  DEV_S3_DELETE_KEYS: 'PRUNER',
});
const proxy = withFaultProxy(() => plain.endpoint);

const setup = (s3: TestS3, extra: Record<string, string> = {}, endpoint = s3.endpoint) =>
  remoteSandbox(s3, 't', { S3_ENDPOINT: endpoint, BACKUP_MULTIPART_MB: '5', S3_COPY_PART_THRESHOLD_BYTES: String(8 * MiB), S3_COPY_PART_BYTES: String(5 * MiB) }, extra);

const aws = (s3: TestS3, args: string[], key = 'S3RVER', secret = 'S3RVER') =>
  execa('aws', [...args, '--endpoint-url', s3.endpoint, '--output', 'json'], { reject: false, all: true, env: { ...process.env, AWS_ACCESS_KEY_ID: key, AWS_SECRET_ACCESS_KEY: secret, AWS_DEFAULT_REGION: 'us-east-1' } });
const remoteRecord = (root: string, id: string) => JSON.parse(readFileSync(join(root, '.l2/backup/remote', `${id}.json`), 'utf8'));
const lastRun = (root: string) => JSON.parse(readFileSync(join(root, '.l2/backup/last-run.json'), 'utf8'));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** A 12 MiB + 3 bytes file of varied bytes: three copy parts of 5 MiB, the last one short. */
const bigFile = (seed: number) => {
  const b = Buffer.allocUnsafe(12 * MiB + 3);
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + seed + (i >> 12)) & 0xff;
  return b;
};

test('an unchanged object over the threshold is copied server-side in ranged parts, not sent again, and verifies', async () => {
  const s = setup(plain, {}, proxy.url);
  const big = bigFile(1);
  writeFileSync(join(s.data, 'models/huge.bin'), big);
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  appendFileSync(join(s.data, 'logs/guardrails.log'), 'one more line\n');
  proxy.requests.length = 0;
  const second = await run('l2backup', ['nightly'], s.env);
  expect(second.exitCode).toBe(0);
  const [, id] = snapshots(s.root);
  const key = `/${plain.bucket}/${s.prefix}/snapshots/${id}/models/huge.bin`;
  const mine = proxy.requests.filter((r) => r.url.split('?')[0] === key);
  const ranges = mine.filter((r) => r.method === 'PUT' && r.headers['x-amz-copy-source-range']).map((r) => r.headers['x-amz-copy-source-range']);
  expect(ranges.sort()).toEqual([`bytes=0-${5 * MiB - 1}`, `bytes=${10 * MiB}-${12 * MiB + 2}`, `bytes=${5 * MiB}-${10 * MiB - 1}`].sort());
  // No byte of it went up again: no PutObject, no UploadPart with a body, no single CopyObject (5 GiB limit).
  expect(mine.filter((r) => r.method === 'PUT' && !r.headers['x-amz-copy-source'])).toEqual([]);
  expect(mine.filter((r) => r.method === 'PUT' && r.headers['x-amz-copy-source'] && !r.url.includes('partNumber='))).toEqual([]);
  expect(readFileSync(plain.objectPath(`${s.prefix}/snapshots/${id}/models/huge.bin`)).equals(big)).toBe(true);
  expect(remoteRecord(s.root, id!).bytesSent).toBeLessThan(MiB);
  expect(second.all).not.toMatch(/server-side copy failed/);
  // The copy carries the sha256 the manifest records, and verify --remote hashes it.
  const head = await aws(plain, ['s3api', 'head-object', '--bucket', plain.bucket, '--key', `${s.prefix}/snapshots/${id}/models/huge.bin`]);
  expect(JSON.parse(head.stdout).Metadata.sha256).toBe(sha(big));
  const verify = await run('l2backup', ['verify', id!, '--remote'], s.env);
  expect([verify.exitCode, verify.all]).toEqual([0, expect.any(String)]);
});

test('a base object that is not what the manifest says is not copied: it is uploaded, and that is said once', async () => {
  const s = setup(plain);
  const big = bigFile(2);
  writeFileSync(join(s.data, 'models/huge.bin'), big);
  writeFileSync(join(s.data, 'models/huge2.bin'), bigFile(3));
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  // Someone overwrote the remote base copy with other bytes (same size): its recorded hash differs.
  const basePath = plain.objectPath(`${s.prefix}/snapshots/${first}/models/huge.bin`);
  writeFileSync(basePath, bigFile(9));
  const meta = `${basePath.slice(0, -'object'.length)}metadata.json`;
  writeFileSync(meta, JSON.stringify({ ...JSON.parse(readFileSync(meta, 'utf8')), 'x-amz-meta-sha256': sha(bigFile(9)) }));
  const second = await run('l2backup', ['nightly'], s.env);
  expect(second.exitCode).toBe(0);
  const [, id] = snapshots(s.root);
  expect(readFileSync(plain.objectPath(`${s.prefix}/snapshots/${id}/models/huge.bin`)).equals(big)).toBe(true);
  expect(second.all.match(/server-side copy failed/g)).toHaveLength(1);
  expect(second.all).toMatch(/huge\.bin: the base object .* is not the one the manifest describes/);
});

test('a server without UploadPartCopy: the nightly uploads instead, says so once per run, and records it', async () => {
  const s = setup(strict);
  writeFileSync(join(s.data, 'models/huge.bin'), bigFile(4));
  writeFileSync(join(s.data, 'models/huge2.bin'), bigFile(5));
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  for (const night of [2, 3]) {
    appendFileSync(join(s.data, 'logs/guardrails.log'), `night ${night}\n`);
    const res = await run('l2backup', ['nightly'], s.env);
    expect(res.exitCode).toBe(0);
    const lines = res.all.split('\n').filter((l) => l.includes('server-side copy failed'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARN/);
    expect(lines[0]).toMatch(/2 unchanged object\(s\).*NotImplemented/);
    expect(lastRun(s.root).notes).toEqual([expect.stringMatching(/^server-side copy failed for 2 unchanged object/)]);
    const id = snapshots(s.root).at(-1)!;
    expect(readFileSync(strict.objectPath(`${s.prefix}/snapshots/${id}/models/huge2.bin`)).equals(bigFile(5))).toBe(true);
    expect(remoteRecord(s.root, id).bytesSent).toBeGreaterThan(24 * MiB);
  }
});

test('S3_SSE and object lock are asked on every write (PutObject, multipart, CopyObject), and the server keeps them', async () => {
  const s = setup(plain, { S3_SSE: 'aws:kms', S3_SSE_KMS_KEY_ID: 'l2-test-key', S3_OBJECT_LOCK_MODE: 'GOVERNANCE', S3_OBJECT_LOCK_DAYS: '30' }, proxy.url);
  writeFileSync(join(s.data, 'models/huge.bin'), bigFile(6)); // multipart upload, then a multipart copy
  writeFileSync(join(s.data, 'models/mid.bin'), Buffer.alloc(6 * MiB, 1)); // multipart upload, then a CopyObject
  proxy.requests.length = 0;
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  appendFileSync(join(s.data, 'logs/guardrails.log'), 'more\n');
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const mine = proxy.requests.filter((r) => r.url.startsWith(`/${plain.bucket}/${s.prefix}/`));
  const writes = mine.filter((r) => (r.method === 'PUT' && !r.url.includes('partNumber=')) || (r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.url)));
  const kinds = new Set(writes.map((r) => (r.method === 'POST' ? 'CreateMultipartUpload' : r.headers['x-amz-copy-source'] ? 'CopyObject' : 'PutObject')));
  expect([...kinds].sort()).toEqual(['CopyObject', 'CreateMultipartUpload', 'PutObject']);
  expect(mine.some((r) => r.headers['x-amz-copy-source-range'])).toBe(true);
  for (const w of writes) {
    expect([w.method, w.url, w.headers['x-amz-server-side-encryption'], w.headers['x-amz-server-side-encryption-aws-kms-key-id'], w.headers['x-amz-object-lock-mode']]).toEqual([w.method, w.url, 'aws:kms', 'l2-test-key', 'GOVERNANCE']);
    const until = Date.parse(String(w.headers['x-amz-object-lock-retain-until-date']));
    expect(until - Date.now()).toBeGreaterThan(29 * 86_400_000);
  }
  // The stock AWS CLI reads the same from the server, for an uploaded, a copied and a part-copied object.
  const [, id] = snapshots(s.root);
  for (const rel of ['models/model.bin', 'models/mid.bin', 'models/huge.bin', '.l2-manifest.json']) {
    const key = `${s.prefix}/snapshots/${id}/${rel}`;
    const head = JSON.parse((await aws(plain, ['s3api', 'head-object', '--bucket', plain.bucket, '--key', key])).stdout);
    expect([rel, head.ServerSideEncryption, head.SSEKMSKeyId, head.ObjectLockMode]).toEqual([rel, 'aws:kms', 'l2-test-key', 'GOVERNANCE']);
    const retention = JSON.parse((await aws(plain, ['s3api', 'get-object-retention', '--bucket', plain.bucket, '--key', key])).stdout);
    expect(retention.Retention.Mode).toBe('GOVERNANCE');
    // ...and the server refuses to delete it before the date, as AWS does.
    const del = await aws(plain, ['s3api', 'delete-object', '--bucket', plain.bucket, '--key', key]);
    expect(del.exitCode).not.toBe(0);
    expect(del.all).toContain('AccessDenied');
  }
});

test('without S3_SSE nothing is asked (off by default), and a KMS key without aws:kms is exit 2 naming it', async () => {
  const s = setup(plain, {}, proxy.url);
  proxy.requests.length = 0;
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const mine = proxy.requests.filter((r) => r.url.startsWith(`/${plain.bucket}/${s.prefix}/`));
  expect(mine.length).toBeGreaterThan(5);
  expect(mine.filter((r) => r.headers['x-amz-server-side-encryption'] || r.headers['x-amz-object-lock-mode'])).toEqual([]);
  const bad = await run('l2backup', ['nightly'], { ...s.env, S3_SSE_KMS_KEY_ID: 'k' });
  expect(bad.exitCode).toBe(2);
  expect(bad.all).toMatch(/S3_SSE_KMS_KEY_ID .*S3_SSE=aws:kms/);
  const half = await run('l2backup', ['nightly'], { ...s.env, S3_OBJECT_LOCK_MODE: 'COMPLIANCE' });
  expect([half.exitCode, half.all]).toEqual([2, expect.stringMatching(/S3_OBJECT_LOCK_DAYS is not set/)]);
});

test('check-remote reports whether the bucket encrypts by default', async () => {
  const none = await run('l2backup', ['check-remote'], setup(plain).env);
  expect(none.exitCode).toBe(0);
  expect(none.all).toMatch(/bucket default encryption: none; l2backup asks for none/);
  const on = await run('l2backup', ['check-remote'], setup(strict, { S3_SSE: 'AES256' }).env);
  expect(on.exitCode).toBe(0);
  expect(on.all).toMatch(/bucket default encryption: AES256; l2backup asks for AES256 on every write/);
});

test('remote prune keeps a snapshot under object lock ("locked until ...") and the run succeeds; an expired lock is no bar', async () => {
  const s = setup(plain, { S3_OBJECT_LOCK_MODE: 'COMPLIANCE', S3_OBJECT_LOCK_DAYS: '30', BACKUP_REMOTE_RETENTION_DAYS: '1', BACKUP_LOCAL_RETENTION_DAYS: '100' });
  expect((await run('l2backup', ['nightly'], at(s.env, '-40d'))).exitCode).toBe(0); // locked until 10 days ago
  const second = await run('l2backup', ['nightly'], at(s.env, '-5d')); // locked for 25 more days
  expect(second.exitCode).toBe(0);
  const [expired, held] = snapshots(s.root);
  // The first one's lock has run out: remote retention deletes it as usual.
  expect(second.all).toContain(`deleted ${expired}`);
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.all).toMatch(new RegExp(`kept ${held} \\(locked until 20\\d\\d-\\d\\d-\\d\\dT`));
  expect(res.all).not.toMatch(/ERROR|WARN|\[error\]|\[warning\]/);
  expect(existsSync(plain.objectPath(`${s.prefix}/snapshots/${held}/.l2-manifest.json`))).toBe(true);
  expect(existsSync(plain.objectPath(`${s.prefix}/snapshots/${expired}/.l2-manifest.json`))).toBe(false);
  const prune = await run('l2backup', ['prune', '--remote'], s.env);
  expect(prune.exitCode).toBe(0);
  expect(prune.all).toMatch(new RegExp(`${held}  keep \\(locked until`));
  expect(prune.all).toMatch(/: deleted: nothing/);
});

test('the objects of an incomplete remote snapshot under lock are kept too (DeleteObjects refused per object)', async () => {
  const s = setup(plain, { S3_OBJECT_LOCK_MODE: 'GOVERNANCE', S3_OBJECT_LOCK_DAYS: '10' });
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  // Its manifest is gone (an interrupted upload, as remote retention sees it): the rest is locked.
  const aws1 = await aws(plain, ['s3api', 'head-object', '--bucket', plain.bucket, '--key', `${s.prefix}/snapshots/${first}/.l2-manifest.json`]);
  expect(aws1.exitCode).toBe(0);
  for (const ext of ['object', 'object.md5', 'metadata.json']) {
    const f = plain.objectPath(`${s.prefix}/snapshots/${first}/.l2-manifest.json`).replace(/object$/, ext);
    if (existsSync(f)) rmSync(f);
  }
  appendFileSync(join(s.data, 'logs/guardrails.log'), 'more\n');
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.all).toMatch(new RegExp(`kept ${first} \\(locked until 20`));
  expect(existsSync(plain.objectPath(`${s.prefix}/snapshots/${first}/models/model.bin`))).toBe(true);
});

test('a nightly key that may not delete: the nightly succeeds and leaves remote prune to the prune job, which uses its own key', async () => {
  const s = setup(strict, { BACKUP_REMOTE_RETENTION_DAYS: '1', BACKUP_LOCAL_RETENTION_DAYS: '30' });
  expect((await run('l2backup', ['nightly'], at(s.env, '-5d'))).exitCode).toBe(0);
  const [old] = snapshots(s.root);
  const nightly = await run('l2backup', ['nightly'], s.env);
  expect(nightly.exitCode).toBe(0);
  expect(nightly.all.match(/remote prune is left to the prune job/g)).toHaveLength(1);
  expect(nightly.all).not.toMatch(/ERROR|WARN|\[error\]|\[warning\]/);
  expect(lastRun(s.root).notes).toEqual([expect.stringMatching(/remote prune is left to the prune job.*S3_ACCESS_KEY_ID may not delete/)]);
  expect(existsSync(strict.objectPath(`${s.prefix}/snapshots/${old}/.l2-manifest.json`))).toBe(true);
  // The prune job with the nightly's key fails, naming the fix; with its own key it deletes.
  const denied = await run('l2backup', ['prune', '--remote'], s.env);
  expect(denied.exitCode).toBe(1);
  expect(denied.all).toMatch(/remote prune failed: .*may not delete.*S3_PRUNE_ACCESS_KEY_ID/);
  const prune = await run('l2backup', ['prune', '--remote'], { ...s.env, S3_PRUNE_ACCESS_KEY_ID: 'PRUNER', S3_PRUNE_SECRET_ACCESS_KEY: 'prune-secret' });
  expect(prune.exitCode).toBe(0);
  expect(prune.all).toContain(`deleted ${old}`);
  expect(existsSync(strict.objectPath(`${s.prefix}/snapshots/${old}/.l2-manifest.json`))).toBe(false);
  expect(prune.all).not.toContain('prune-secret');
});
