/**
 * Hostile tests of the streamed multipart upload (file-parts.ts, Remote.putLarge/uploadPart),
 * against the real dev S3 server and the built l2backup, with a proxy in front only for faults
 * a real server cannot show.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';
import { listenLocal } from '../helpers/listen.js';

const s3 = withS3Server();

const isPart = (req: http.IncomingMessage) => req.method === 'PUT' && /[?&]partNumber=/.test(req.url ?? '') && !req.headers['x-amz-copy-source'];

/**
 * A proxy that damages bytes on the wire: the body of the first `damage` UploadPart requests has
 * one byte flipped (same length, so nothing but a checksum of the bytes can tell).
 */
async function flippingProxy(upstream: string, damage: number) {
  const target = new URL(upstream);
  let left = damage;
  const state = { flipped: 0, parts: 0 };
  const server = http.createServer((req, res) => {
    let body: NodeJS.ReadableStream = req;
    if (isPart(req)) {
      state.parts++;
      if (left > 0) {
        left--;
        let done = false;
        body = req.pipe(
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              if (!done && chunk.length > 100) {
                done = true;
                state.flipped++;
                const c = Buffer.from(chunk);
                c[100] = c[100]! ^ 0xff;
                return cb(null, c);
              }
              cb(null, chunk);
            },
          }),
        );
      }
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.socket?.destroy());
    body.pipe(up);
  });
  const listening = await listenLocal(server);
  return { url: listening.url, state, close: () => listening.close() };
}

test('a part damaged on the wire (same length) never becomes the remote copy: the server is told its MD5 and the part is sent again', async () => {
  const proxy = await flippingProxy(s3.endpoint, 1);
  try {
    const sb = sandbox();
    const { data, sources } = makeTree(sb.dir);
    const big = randomBytes(12 * 1024 * 1024); // three parts of 5 MiB
    writeFileSync(join(data, 'models/large.bin'), big);
    const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/flip`, BACKUP_MULTIPART_MB: '5' }), S3_ENDPOINT: proxy.url, BACKUP_SOURCES: sources };
    const res = await run('l2backup', ['nightly'], env, { timeout: 200_000 });
    expect(proxy.state.flipped).toBe(1); // the damage really happened
    expect(proxy.state.parts).toBeGreaterThan(3); // three parts, and the damaged one again
    const [id] = snapshots(sb.root);
    const stored = readFileSync(s3.objectPath(`flip/snapshots/${id}/models/large.bin`));
    // Whatever the run says, a remote copy it calls uploaded must be the file's bytes.
    expect(res.exitCode).toBe(0);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
  } finally {
    await proxy.close();
  }
}, 240_000);
