/**
 * A first upload's memory stays bounded (issue 14): the parts of a multipart upload are read
 * from the file as they go up, never held whole. lib-storage held every part of its queue (four
 * of BACKUP_MULTIPART_MB each) plus the one it assembled: a first upload peaked near 270 MiB.
 *
 * Not timed: a proxy in front of the real dev S3 server holds every UploadPart it receives,
 * unanswered, until four are open at once (the parts one upload sends together). At that moment
 * a client that buffers parts holds all four whole (4 x 64 MiB); one that streams them holds a
 * few read chunks. The client's resident memory is read then, from /proc, and the parts are let
 * through: the upload completes and its object is the file.
 *
 * Parts read from the file as they go up are read after the file was checked against its
 * manifest: a local snapshot file rewritten while its parts are held open must fail them, and
 * the multipart upload is aborted (no object, no upload left on the server).
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, readFileSync, rmSync, createReadStream, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, sandbox } from '../helpers/run.js';
import { listenLocal } from '../helpers/listen.js';
import { snapshots } from '../helpers/tree.js';
import { s3Env, withS3Server } from '../helpers/s3.js';

const s3 = withS3Server();
const MiB = 1024 * 1024;

/** Resident memory of a process, in bytes. */
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** A file of `mib` MiB whose every MiB differs (its first word is its index, its bytes `fill`). */
function writeBig(path: string, mib: number, fill = (i: number) => i) {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < mib; i++) {
    block.fill(fill(i) & 0xff);
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
  }
  closeSync(fd);
}

/** A proxy in front of the dev server that holds UploadPart requests until `count` are open, runs `whenOpen`, then lets them all through. */
async function holdingProxy(count: number, whenOpen: () => void) {
  const held: (() => void)[] = [];
  let released = false;
  const upstream = new URL(s3.endpoint);
  return listenLocal(
    http.createServer((req, res) => {
      // As passThrough, but a request the client gives up on is dropped upstream too, as on a direct connection.
      const forward = () => {
        const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        up.on('error', () => res.socket?.destroy());
        res.on('close', () => {
          if (!res.writableFinished) up.destroy();
        });
        req.pipe(up);
      };
      if (released || req.method !== 'PUT' || !/[?&]partNumber=/.test(req.url ?? '')) return forward();
      held.push(forward);
      if (held.length < count) return;
      released = true;
      whenOpen();
      for (const f of held.splice(0)) f();
    }),
  );
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

test('a multipart upload never holds its parts whole: with four 64 MiB parts held open at the server, the client stays far below them', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'models');
  mkdirSync(models);
  const big = join(models, 'weights.bin');
  writeBig(big, 256);
  let pid = 0;
  let rssWithFourOpen: number | undefined;
  const proxy = await holdingProxy(4, () => (rssWithFourOpen = rssOf(pid)));
  try {
    const prefix = `m${Math.random().toString(36).slice(2, 8)}`;
    const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`, BACKUP_MULTIPART_MB: '64' }), S3_ENDPOINT: proxy.url, BACKUP_SOURCES: `models=${models}` };
    const child = execa('node', [bin('l2backup'), 'nightly'], { env, extendEnv: false, reject: false, all: true, timeout: 280_000 });
    pid = child.pid!;
    const res = await child;
    expect(res.all).toMatch(/uploaded /);
    expect(res.exitCode).toBe(0);
    expect(rssWithFourOpen).toBeDefined();
    // Four parts held whole would be 256 MiB on top of Node and the SDK (about 100 MiB).
    expect(rssWithFourOpen! / MiB).toBeLessThan(192);
    const [id] = snapshots(sb.root);
    expect(await sha256File(s3.objectPath(`${prefix}/snapshots/${id}/models/weights.bin`))).toBe(await sha256File(big));
  } finally {
    await proxy.close();
    rmSync(sb.dir, { recursive: true, force: true });
  }
}, 280_000);

test('a local snapshot file rewritten while its parts are held open at the server never becomes an object: parts fail their check, the multipart upload is aborted', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'models');
  mkdirSync(models);
  writeBig(join(models, 'weights.bin'), 64);
  const prefix = `c${Math.random().toString(36).slice(2, 8)}`;
  let rewritten = false;
  // Both 32 MiB parts are open, their bytes mostly unread: the snapshot's copy changes under them.
  const proxy = await holdingProxy(2, () => {
    const [id] = snapshots(sb.root);
    writeBig(join(sb.root, id!, 'models/weights.bin'), 64, (i) => i + 1);
    rewritten = true;
  });
  try {
    const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`, BACKUP_MULTIPART_MB: '32' }), S3_ENDPOINT: proxy.url, BACKUP_SOURCES: `models=${models}` };
    const res = await execa('node', [bin('l2backup'), 'nightly'], { env, extendEnv: false, reject: false, all: true, timeout: 280_000 });
    expect(rewritten).toBe(true);
    expect(res.exitCode).toBe(1);
    expect(res.all).toMatch(/cannot be uploaded: .*weights\.bin no longer matches its manifest \(part \d changed while it was sent/);
    const [id] = snapshots(sb.root);
    expect(JSON.parse(readFileSync(join(sb.root, '.l2/backup/remote', `${id}.json`), 'utf8')).state).toBe('skipped');
    expect(existsSync(s3.objectPath(`${prefix}/snapshots/${id}/models/weights.bin`))).toBe(false);
    const uploads = join(s3.dir, s3.bucket, '._S3rver_uploads');
    const left = existsSync(uploads) ? readdirSync(uploads).filter((u) => existsSync(join(uploads, u, 'key')) && readFileSync(join(uploads, u, 'key'), 'utf8').startsWith(prefix)) : [];
    expect(left).toEqual([]);
  } finally {
    await proxy.close();
    rmSync(sb.dir, { recursive: true, force: true });
  }
}, 280_000);
