/**
 * An operator's attack on the speed code (a14): parallel remote downloads and verify --remote,
 * parallel local restore, the base list's merge-join. Real dev S3 server on 127.0.0.1, the
 * built bin/ programs as child processes; a small fault-injecting HTTP proxy only for answers
 * the real server never gives (a Range header ignored, a wrong Content-Range).
 */
import { writeFileSync, mkdirSync, rmSync, readFileSync, truncateSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { listenLocal, passThrough } from '../helpers/listen.js';
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

/**
 * What the proxy answers instead of the server for one ranged GET of `key` (bytes start-end of
 * an object of `size` bytes): undefined passes the server's answer through.
 */
type RangeAnswer = (key: string, start: number, end: number, size: number) => { status: number; headers: Record<string, string>; body: Buffer } | undefined;

/**
 * A proxy in front of the dev S3 server that passes every request through unchanged (so the
 * signature holds) and, for the ranged GETs `answer` picks, throws the server's answer away and
 * sends its own, made from the object's bytes on the server's disk.
 */
async function rangeProxy(answer: RangeAnswer): Promise<{ url: string; faults: number; maxRangeBytesInFlight: number; close(): Promise<void> }> {
  const state = { url: '', faults: 0, maxRangeBytesInFlight: 0, close: async () => {} };
  let inFlight = 0;
  const server = http.createServer((req, res) => {
    // The bytes of ranged GETs asked for and not yet answered in full: what the client may hold.
    const asked = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
    if (asked) {
      const n = Number(asked[2]) - Number(asked[1]) + 1;
      inFlight += n;
      state.maxRangeBytesInFlight = Math.max(state.maxRangeBytesInFlight, inFlight);
      res.once('close', () => (inFlight -= n));
    }
    passThrough(req, res, new URL(`http://127.0.0.1:${s3.port}`), (ur) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
      const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(s3.bucket.length + 2));
      const own = range && ur.statusCode === 206 ? answer(key, Number(range[1]), Number(range[2]), readFileSync(s3.objectPath(key)).length) : undefined;
      if (!own) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      state.faults++;
      ur.resume();
      res.writeHead(own.status, { 'content-length': String(own.body.length), 'content-type': 'application/octet-stream', etag: String(ur.headers.etag), ...own.headers });
      res.end(own.body);
    });
  });
  const listening = await listenLocal(server);
  state.url = listening.url;
  state.close = listening.close;
  return state;
}

const bigKey = (key: string) => key.endsWith('/big/weights.bin');

test('a server that ignores Range (200 with the whole object) still gives a byte-exact restore and a clean verify --remote', async () => {
  const s = await backedUp();
  const proxy = await rangeProxy((key) => (bigKey(key) ? { status: 200, headers: {}, body: readFileSync(s3.objectPath(key)) } : undefined));
  try {
    const env = { ...s.env, S3_ENDPOINT: proxy.url };
    const target = join(s.dir, 'restored');
    const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', target], env);
    expect(res.stderr).not.toMatch(/does not match/);
    expect(res.exitCode).toBe(0);
    expect(proxy.faults).toBeGreaterThan(0);
    expect((await execa('diff', ['-r', s.models, join(target, 'models')], { reject: false })).exitCode).toBe(0);
    const v = await run('l2backup', ['verify', s.id, '--remote'], env);
    expect(v.all).not.toMatch(/changed: /);
    expect(v.exitCode).toBe(0);
  } finally {
    await proxy.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
}, 240_000);

test('a wrong Content-Range for one part (other bytes of the right length) is named as a fault of the server, never as damaged backup content', async () => {
  const s = await backedUp();
  // The second part is answered with the first part's bytes, under a Content-Range that says so.
  const proxy = await rangeProxy((key, start, end) => (bigKey(key) && start === 5 * MB ? { status: 206, headers: { 'content-range': `bytes 0-${end - start}/${11 * MB + 777}` }, body: readFileSync(s3.objectPath(key)).subarray(0, end - start + 1) } : undefined));
  try {
    const env = { ...s.env, S3_ENDPOINT: proxy.url };
    const target = join(s.dir, 'restored');
    mkdirSync(join(target, 'models/big'), { recursive: true });
    writeFileSync(join(target, 'models/big/weights.bin'), 'what was there');
    const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', target], env);
    expect(proxy.faults).toBeGreaterThan(0);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).not.toMatch(/does not match the manifest/);
    expect(res.stderr).toMatch(/Content-Range bytes 0-5242879\/11535113 for a request of bytes 5242880-10485759/);
    expect(readFileSync(join(target, 'models/big/weights.bin'), 'utf8')).toBe('what was there');
    const v = await run('l2backup', ['verify', s.id, '--remote'], env);
    expect(v.exitCode).toBe(1);
    expect(v.all).not.toMatch(/changed: /);
    expect(v.all).toMatch(/Content-Range bytes 0-5242879\/11535113 for a request/);
  } finally {
    await proxy.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
}, 240_000);

test('a large object shortened on the server: the restore says what is wrong with it (its size), not a cut-off "size-mismatc…" in place of a hash', async () => {
  const s = await backedUp();
  truncateSync(s3.objectPath(`${s.prefix}/snapshots/${s.id}/models/big/weights.bin`), 7 * MB);
  const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', join(s.dir, 'restored')], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/models\/big\/weights\.bin: content does not match the manifest \(S3 object \S+ (has 7340032 bytes|is shorter than its file list says \(11535113 bytes\))/);
  rmSync(s.dir, { recursive: true, force: true });
}, 240_000);

test('a local restore onto a volume that fills up: one line naming ENOSPC, exit 1, no crash on a read still in flight, no temp file left', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'data', 'models');
  mkdirSync(models, { recursive: true });
  // Large files (1 MiB and up) are copied with a read ahead and a write behind, four at once.
  for (let i = 0; i < 8; i++) writeFileSync(join(models, `f${i}.bin`), randomBytes(4 * MB + i));
  const env = { ...sb.env, BACKUP_SOURCES: `models=${models}` };
  expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
  const target = join(sb.dir, 'small');
  mkdirSync(target);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=10m', 'tmpfs', target]);
  try {
    // One libuv thread: the read ahead is still queued when the write behind fails.
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await run('l2backup', ['restore', 'latest', '--target', target], { ...env, UV_THREADPOOL_SIZE: '1' });
      expect(res.stderr).not.toMatch(/EBADF|node:internal|triggerUncaughtException/);
      expect(res.stderr).toMatch(/restoring models\/f\d\.bin failed: ENOSPC/);
      expect(res.exitCode).toBe(1);
      expect((await execa('find', [target, '-name', '.l2restore-*'])).stdout).toBe('');
      await execa('sh', ['-c', `rm -rf '${target}'/*`]);
    }
  } finally {
    await execa('umount', [target]);
    rmSync(sb.dir, { recursive: true, force: true });
  }
}, 240_000);

test('the parts of ranged downloads held at once stay within 128 MiB whatever BACKUP_MULTIPART_MB and BACKUP_DOWNLOAD_CONCURRENCY say (as uploads do)', async () => {
  const s = setup({ BACKUP_MULTIPART_MB: '64', BACKUP_DOWNLOAD_CONCURRENCY: '16' });
  writeFileSync(join(s.models, 'big/weights.bin'), randomBytes(200 * MB));
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [id] = snapshots(s.root);
  const proxy = await rangeProxy(() => undefined);
  try {
    const v = await run('l2backup', ['verify', id!, '--remote'], { ...s.env, S3_ENDPOINT: proxy.url });
    expect(v.exitCode).toBe(0);
    expect(proxy.maxRangeBytesInFlight).toBeGreaterThan(0);
    expect(proxy.maxRangeBytesInFlight).toBeLessThanOrEqual(128 * MB);
  } finally {
    await proxy.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
}, 240_000);

test('a part whose body is cut short (its Content-Range right) is named as a fault of the server, never as an object shorter than its file list', async () => {
  const s = await backedUp();
  const proxy = await rangeProxy((key, start, end, size) => (bigKey(key) && start === 5 * MB ? { status: 206, headers: { 'content-range': `bytes ${start}-${end}/${size}` }, body: readFileSync(s3.objectPath(key)).subarray(start, start + MB) } : undefined));
  try {
    const env = { ...s.env, S3_ENDPOINT: proxy.url };
    const target = join(s.dir, 'restored');
    const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', target], env);
    expect(proxy.faults).toBeGreaterThan(0);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).not.toMatch(/does not match the manifest|shorter than its file list/);
    expect(res.stderr).toMatch(/S3 sent 1048576 of the 5242880 bytes asked for .*bytes 5242880-10485759/);
    expect((await execa('find', [target, '-name', '.l2restore-*'])).stdout).toBe('');
    const v = await run('l2backup', ['verify', s.id, '--remote'], env);
    expect(v.exitCode).toBe(1);
    expect(v.all).not.toMatch(/changed: /);
  } finally {
    await proxy.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
}, 240_000);

test('a body that breaks off once mid-way (reset after half its first chunk), in every GET a restore and a verify make, is fetched again: both succeed, byte-exact', async () => {
  const s = await backedUp();
  // Each GET (key and range) breaks off the first time it is asked for, then passes.
  const broken = new Set<string>();
  const server = http.createServer((req, res) => {
    const id = `${req.url} ${req.headers.range ?? ''}`;
    const breakIt = req.method === 'GET' && !/[?&]list-type=/.test(req.url ?? '') && !broken.has(id);
    if (breakIt) broken.add(id);
    passThrough(req, res, new URL(`http://127.0.0.1:${s3.port}`), (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (!breakIt || (ur.statusCode ?? 500) >= 300) return void ur.pipe(res);
      let sent = false;
      ur.on('data', (chunk: Buffer) => {
        if (sent) return;
        sent = true;
        res.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)), () => res.socket?.destroy());
      });
      ur.on('end', () => sent || res.socket?.destroy());
    });
  });
  const proxy = await listenLocal(server);
  try {
    const env = { ...s.env, S3_ENDPOINT: proxy.url };
    const target = join(s.dir, 'restored');
    const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', target], env);
    expect(res.stderr).not.toMatch(/ERROR/);
    expect(res.exitCode).toBe(0);
    expect(readFileSync(join(target, 'models/big/weights.bin')).equals(readFileSync(join(s.models, 'big/weights.bin')))).toBe(true);
    expect(readFileSync(join(target, 'models/plain.txt'), 'utf8')).toBe('plain\n');
    // The manifest, the file list, the small files and every range of the large one were broken once.
    expect([...broken].filter((id) => id.includes('weights.bin') && id.includes('bytes=')).length).toBeGreaterThanOrEqual(3);
    broken.clear();
    const v = await run('l2backup', ['verify', s.id, '--remote'], env);
    expect(v.exitCode).toBe(0);
    expect(broken.size).toBeGreaterThan(0);
  } finally {
    await proxy.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
}, 240_000);

test('a file deeper than PATH_MAX, unchanged, is linked from the previous snapshot by the next one (no false "damaged" warning, no copy)', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'data', 'models');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'top.bin'), 'top');
  // 24 levels of 202 bytes: the whole path is over 4096 bytes; made with relative cd's, as an operator's shell would.
  const level = 'q'.repeat(200);
  const down = Array.from({ length: 24 }, (_, i) => `mkdir ${String(i).padStart(2, '0')}${level} && cd ${String(i).padStart(2, '0')}${level}`).join(' && ');
  await execa('bash', ['-c', `set -e; cd "$1"; ${down}; printf deep > deep.bin`, 'bash', models]);
  const env = { ...sb.env, BACKUP_SOURCES: `models=${models}` };
  try {
    expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
    const second = await run('l2backup', ['snapshot'], env);
    expect(second.exitCode).toBe(0);
    expect(second.stderr).not.toMatch(/no longer matches its file list/);
    const [a, b] = snapshots(sb.root);
    const m = JSON.parse(readFileSync(join(sb.root, b!, '.l2-manifest.json'), 'utf8')) as { totals: { linkedFiles: number; files: number } };
    // Every source file linked (the generated env copy is always written anew).
    expect(m.totals.linkedFiles).toBe(2);
    const inode = async (id: string) => (await execa('bash', ['-c', `find "$1" -name deep.bin -printf '%i'`, 'bash', join(sb.root, id, 'models')])).stdout;
    expect(await inode(b!)).toBe(await inode(a!));
  } finally {
    await execa('rm', ['-rf', sb.dir]);
  }
}, 240_000);
