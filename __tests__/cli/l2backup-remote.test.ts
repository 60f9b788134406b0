/** l2backup against a real S3-compatible server on 127.0.0.1 (s3rver, fixed up: see helpers/s3-server.cjs). */
import { readFileSync, writeFileSync, existsSync, mkdirSync, appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { withS3Server, remoteSandbox } from '../helpers/s3.js';
import { withReceiver } from '../helpers/receiver.js';

const s3 = withS3Server();
const hook = withReceiver();

const setup = (extra: Record<string, string> = {}) => remoteSandbox(s3, 't', { BACKUP_MULTIPART_MB: '5', ALERT_WEBHOOK_URL: hook.url, ALERT_MIN_INTERVAL_MS: '0' }, extra);

const sh = (script: string, env: Record<string, string> = {}) => execa('sh', ['-c', script], { reject: false, all: true, env: { ...process.env, ...env } });
const remoteRecord = (root: string, id: string) => JSON.parse(readFileSync(join(root, '.l2/backup/remote', `${id}.json`), 'utf8'));

test("remote layout is the runbook's, and the stock AWS CLI restores a source from it", async () => {
  const s = setup();
  writeFileSync(join(s.data, 'models/large.bin'), Buffer.alloc(12 * 1024 * 1024, 7));
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  const [id] = snapshots(s.root);
  const base = join(s3.dir, s3.bucket, s.prefix, 'snapshots', id!);
  expect(existsSync(`${base}/models/model.bin._S3rver_object`)).toBe(true);
  expect(existsSync(`${base}/models/large.bin._S3rver_object`)).toBe(true);
  expect(existsSync(`${base}/.l2-manifest.json._S3rver_object`)).toBe(true);
  expect(remoteRecord(s.root, id!).state).toBe('uploaded');
  const out = join(s.dir, 'aws-restore');
  const aws = await sh(`aws s3 sync s3://${s3.bucket}/${s.prefix}/snapshots/${id}/models/ ${out}/ --endpoint-url ${s3.endpoint} --only-show-errors`, {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_DEFAULT_REGION: 'us-east-1',
  });
  expect(aws.all).toBe('');
  expect(aws.exitCode).toBe(0);
  // The CLI cannot make symlinks; every file is byte-identical.
  expect((await sh(`diff -r -x current ${join(s.data, 'models')} ${out}`)).exitCode).toBe(0);
});

test('byte-exact round trip through the remote with l2backup restore --from remote', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  rmLocal(s.root);
  const target = join(s.dir, 'from-remote');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target], s.env);
  expect(res.exitCode).toBe(0);
  for (const src of ['models', 'logs', 'reports']) expect((await sh(`diff -r ${join(s.data, src)} ${join(target, src)}`)).exitCode).toBe(0);
});

function rmLocal(root: string) {
  for (const id of snapshots(root)) rmSync(join(root, id), { recursive: true });
}

test('incremental remote: unchanged objects are copied server-side, only changed bytes are sent', async () => {
  const s = setup();
  await run('l2backup', ['nightly'], s.env);
  appendFileSync(join(s.data, 'logs/guardrails.log'), 'one more line\n');
  await run('l2backup', ['nightly'], s.env);
  const [a, b] = snapshots(s.root);
  const first = remoteRecord(s.root, a!);
  const second = remoteRecord(s.root, b!);
  expect(second.objectsCopied).toBeGreaterThan(20);
  // The changed log, plus the snapshot's own file list and manifest.
  const meta = readFileSync(join(s.root, b!, '.l2-files.jsonl.gz')).length + readFileSync(join(s.root, b!, '.l2-manifest.json')).length;
  const changed = readFileSync(join(s.data, 'logs/guardrails.log')).length;
  expect(second.bytesSent).toBe(changed + meta);
  expect(first.bytesSent).toBeGreaterThan(300_000);
  expect((await run('l2backup', ['verify', b!, '--remote'], s.env)).exitCode).toBe(0);
});

test('server down then up: the local snapshot stands as remote pending, then the next run catches up', async () => {
  const s = setup();
  await s3.stop();
  let down;
  try {
    down = await run('l2backup', ['nightly'], { ...s.env, ALERT_BUDGET_MS: '3000', ALERT_TIMEOUT_MS: '1000' });
  } finally {
    await s3.start();
  }
  expect(down.exitCode).toBe(1);
  expect(down.stderr).toMatch(/ALERT .*\[error\] backup upload failed: .*refused the connection.*check with/);
  const [a] = snapshots(s.root);
  expect(existsSync(join(s.root, a!, 'models/model.bin'))).toBe(true);
  const st = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(st.remote.pending).toEqual([a]);
  const up = await run('l2backup', ['nightly'], s.env);
  expect(up.exitCode).toBe(0);
  const [, b] = snapshots(s.root);
  expect(up.stderr.indexOf(`uploaded ${a}`)).toBeLessThan(up.stderr.indexOf(`uploaded ${b}`));
  expect(remoteRecord(s.root, a!).state).toBe('uploaded');
  const list = JSON.parse((await run('l2backup', ['list', '--remote', '--json'], s.env)).stdout);
  expect(list).toEqual([
    { id: a, complete: true },
    { id: b, complete: true },
  ]);
});

test('wrong credentials: exit 1 with what failed and how to check it; the local snapshot stands', async () => {
  const s = setup({ S3_SECRET_ACCESS_KEY: 'definitely-wrong-secret' });
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/S3_SECRET_ACCESS_KEY looks wrong; check with 'l2backup check-remote'/);
  expect(res.all).not.toContain('definitely-wrong-secret');
  expect(snapshots(s.root)).toHaveLength(1);
  const check = await run('l2backup', ['check-remote'], s.env);
  expect(check.exitCode).toBe(1);
});

test('verify --remote detects a flipped byte in a stored object', async () => {
  const s = setup();
  await run('l2backup', ['nightly'], s.env);
  const [id] = snapshots(s.root);
  const obj = s3.objectPath(`${s.prefix}/snapshots/${id}/reports/daily.csv`);
  const bytes = readFileSync(obj);
  bytes[0] = bytes[0]! ^ 1;
  writeFileSync(obj, bytes);
  const res = await run('l2backup', ['verify', id!, '--remote', '--json'], s.env);
  expect(res.exitCode).toBe(1);
  expect(JSON.parse(res.stdout.trim().split('\n').pop()!).report.changed).toEqual(['reports/daily.csv']);
});

test('an interrupted remote upload is not listed as complete and is cleaned up by the next run', async () => {
  const s = setup();
  const stale = join(s3.dir, s3.bucket, s.prefix, 'snapshots', '20200101-020000', 'models');
  mkdirSync(stale, { recursive: true });
  // A leftover object (as s3rver stores it) of an upload that never wrote its manifest.
  const put = await sh(`echo partial | aws s3 cp - s3://${s3.bucket}/${s.prefix}/snapshots/20200101-020000/models/x.bin --endpoint-url ${s3.endpoint}`, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1' });
  expect(put.exitCode).toBe(0);
  const before = JSON.parse((await run('l2backup', ['list', '--remote', '--json'], s.env)).stdout);
  expect(before).toEqual([{ id: '20200101-020000', complete: false }]);
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const after = JSON.parse((await run('l2backup', ['list', '--remote', '--json'], s.env)).stdout);
  expect(after.map((x: { id: string }) => x.id)).toEqual(snapshots(s.root));
});
