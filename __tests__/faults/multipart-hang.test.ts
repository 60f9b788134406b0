/**
 * Every S3 call is bounded, multipart parts too (issue 9, section 3): a server that takes the
 * CreateMultipartUpload and then accepts an UploadPart and never answers must end the nightly
 * within a few S3_TIMEOUT_MS, with the lock released and the snapshot pending. Real S3 dev
 * server behind the fault proxy (hanging only UploadPart requests), built binary. The SDK's
 * socket and request timeouts already bound this case; this guards it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';
import { withFaultProxy } from '../helpers/fault-proxy.js';

const s3 = withS3Server();
const proxy = withFaultProxy(() => s3.endpoint);

test('an UploadPart that is accepted and never answered ends the nightly within a few S3_TIMEOUT_MS: exit 1, lock released, pending', async () => {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  writeFileSync(join(data, 'models/large.bin'), Buffer.alloc(12 * 1024 * 1024, 5)); // three parts of 5 MiB
  const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/mp`, BACKUP_MULTIPART_MB: '5', S3_TIMEOUT_MS: '1000' }), S3_ENDPOINT: proxy.url, BACKUP_SOURCES: sources };
  proxy.hangIf = (req) => req.method === 'PUT' && /[?&]partNumber=/.test(req.url ?? '');
  try {
    // (the 100 s child timeout only stops a hung test; it is not the assertion)
    const res = await run('l2backup', ['nightly'], env, { timeout: 100_000 });
    expect(res.exitCode).toBe(1);
    expect(proxy.hung).toBeGreaterThan(0); // the parts really went out, and were left hanging
    expect(res.stderr).toMatch(/upload of \d{8}-\d{6} .*failed: .*(timed out|took longer than its bound)/);
  } finally {
    proxy.hangIf = undefined;
  }
  const st = JSON.parse((await run('l2backup', ['status', '--json'], env)).stdout);
  expect(st.lock).toBeNull();
  expect(st.remote.pending).toEqual(snapshots(sb.root));
  // The server answers again: the pending snapshot goes up whole (a roomy timeout: the machine may be busy).
  const up = await run('l2backup', ['upload'], { ...env, S3_TIMEOUT_MS: '60000' });
  expect(up.exitCode).toBe(0);
  expect(JSON.parse((await run('l2backup', ['status', '--json'], env)).stdout).remote.pending).toEqual([]);
}, 280_000);
