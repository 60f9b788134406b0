/**
 * An operator's attack on the speed code (a14): parallel remote downloads and verify --remote,
 * parallel local restore, the base list's merge-join. Real dev S3 server on 127.0.0.1, the
 * built bin/ programs as child processes; a small fault-injecting HTTP proxy only for answers
 * the real server never gives (a Range header ignored, a wrong Content-Range).
 */
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { startS3, s3Env, type TestS3 } from '../helpers/s3.js';

let s3: TestS3;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3.stop();
});

const MB = 1024 * 1024;
const RAW_NAME = Buffer.concat([Buffer.from('raw-'), Buffer.from([0xff, 0xfe]), Buffer.from('.bin')]);

function setup(extra: Record<string, string> = {}) {
  const sb = sandbox();
  const models = join(sb.dir, 'data', 'models');
  mkdirSync(join(models, 'big'), { recursive: true });
  writeFileSync(join(models, 'big/weights.bin'), randomBytes(11 * MB + 777));
  writeFileSync(join(models, 'plain.txt'), 'plain\n');
  writeFileSync(Buffer.concat([Buffer.from(models + '/'), RAW_NAME]), 'bytes that are not UTF-8 in the name\n');
  const prefix = `p${Math.random().toString(36).slice(2, 8)}`;
  Object.assign(sb.env, s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`, BACKUP_MULTIPART_MB: '5', BACKUP_DOWNLOAD_CONCURRENCY: '4', ...extra }), { BACKUP_SOURCES: `models=${models}` });
  return { ...sb, models, prefix };
}

async function backedUp(extra: Record<string, string> = {}) {
  const s = setup(extra);
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  const [id] = snapshots(s.root);
  return { ...s, id: id! };
}

test('verify --remote finds the object of a name that is not UTF-8 (stored under its %XX~l2raw key)', async () => {
  const s = await backedUp();
  const v = await run('l2backup', ['verify', s.id, '--remote', '--json'], s.env);
  const report = (JSON.parse(v.stdout.trim().split('\n').pop()!) as { report: { missing: string[]; extra: string[]; changed: string[]; checked: number; files: number } }).report;
  expect({ missing: report.missing, extra: report.extra, changed: report.changed }).toEqual({ missing: [], extra: [], changed: [] });
  expect(report.checked).toBe(report.files);
  expect(v.exitCode).toBe(0);
  rmSync(s.dir, { recursive: true, force: true });
}, 240_000);
