/**
 * Parallel remote restore and verify (issue 14): many files in many folders and large objects
 * fetched in ranged parts, against the real dev S3 server. Whatever the order the downloads end
 * in, every byte is hash-checked, folder modes and times are the snapshot's, and a damaged or
 * shortened object on the server is refused by name (never renamed into place).
 */
import { readFileSync, writeFileSync, mkdirSync, statSync, rmSync, truncateSync, openSync, writeSync, closeSync, utimesSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { bin, run, sandbox } from '../helpers/run.js';
import { tracked } from '../helpers/cleanup.js';
import { snapshots } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';

const s3 = withS3Server();

const MB = 1024 * 1024;

function setup() {
  const sb = sandbox();
  const data = join(sb.dir, 'data');
  const models = join(data, 'models');
  // 23 MiB: five 5 MiB parts, the last one short; 11 MiB: two parts and a bit.
  mkdirSync(join(models, 'big'), { recursive: true });
  writeFileSync(join(models, 'big/weights.bin'), randomBytes(23 * MB + 12345));
  writeFileSync(join(models, 'big/other.bin'), randomBytes(11 * MB));
  for (let d = 0; d < 12; d++) {
    const dir = join(models, `set-${d}`, 'inner');
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 15; f++) writeFileSync(join(dir, `f${f} & ü.txt`), randomBytes(100 + d * 37 + f));
    chmodSync(join(models, `set-${d}`), 0o750);
    utimesSync(join(models, `set-${d}`, 'inner'), new Date('2024-01-02T03:04:05Z'), new Date('2024-01-02T03:04:05Z'));
    utimesSync(join(models, `set-${d}`), new Date('2023-05-06T07:08:09Z'), new Date('2023-05-06T07:08:09Z'));
  }
  const prefix = `p${Math.random().toString(36).slice(2, 8)}`;
  Object.assign(sb.env, s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`, BACKUP_MULTIPART_MB: '5', BACKUP_DOWNLOAD_CONCURRENCY: '4' }), { BACKUP_SOURCES: `models=${models}` });
  return { ...sb, data, models, prefix };
}

const sh = (script: string) => execa('sh', ['-c', script], { reject: false, all: true });

async function backedUp() {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [id] = snapshots(s.root);
  for (const i of snapshots(s.root)) rmSync(join(s.root, i), { recursive: true });
  return { ...s, id: id! };
}

test('restore --from remote in parallel: byte-exact, folder modes and times kept, large objects in ranged parts', async () => {
  const s = await backedUp();
  const target = join(s.dir, 'restored');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target], s.env);
  expect(res.exitCode).toBe(0);
  expect((await sh(`diff -r '${s.models}' '${join(target, 'models')}'`)).exitCode).toBe(0);
  for (let d = 0; d < 12; d++) {
    const dir = statSync(join(target, 'models', `set-${d}`));
    expect(dir.mode & 0o777).toBe(0o750);
    expect(dir.mtime.toISOString()).toBe('2023-05-06T07:08:09.000Z');
    expect(statSync(join(target, 'models', `set-${d}`, 'inner')).mtime.toISOString()).toBe('2024-01-02T03:04:05.000Z');
  }
  expect((await run('l2backup', ['verify', s.id, '--remote'], s.env)).exitCode).toBe(0);
});

test('a large object damaged on the server (same size) is refused by restore and reported by verify --remote', async () => {
  const s = await backedUp();
  const obj = s3.objectPath(`${s.prefix}/snapshots/${s.id}/models/big/weights.bin`);
  const fd = openSync(obj, 'r+');
  writeSync(fd, Buffer.from('XXXX'), 0, 4, 17 * MB + 3); // inside the fourth part
  closeSync(fd);
  const target = join(s.dir, 'restored');
  mkdirSync(join(target, 'models/big'), { recursive: true });
  writeFileSync(join(target, 'models/big/weights.bin'), 'what was there');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/models\/big\/weights\.bin: content does not match the manifest/);
  expect(readFileSync(join(target, 'models/big/weights.bin'), 'utf8')).toBe('what was there');
  expect((await sh(`ls -A '${join(target, 'models/big')}'`)).all).toBe('other.bin\nweights.bin');
  const v = await run('l2backup', ['verify', s.id, '--remote', '--json'], s.env);
  expect(v.exitCode).not.toBe(0);
  expect(JSON.parse(v.stdout.trim().split('\n').pop()!).report.changed).toEqual(['models/big/weights.bin']);
});

test('a large object shortened on the server is refused, and nothing half-written is left', async () => {
  const s = await backedUp();
  truncateSync(s3.objectPath(`${s.prefix}/snapshots/${s.id}/models/big/other.bin`), 7 * MB);
  const target = join(s.dir, 'restored');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/models\/big\/other\.bin: content does not match the manifest/);
  expect((await sh(`ls -A '${join(target, 'models/big')}'`)).all).toBe('weights.bin');
  expect(readFileSync(join(target, 'models/big/weights.bin')).equals(readFileSync(join(s.models, 'big/weights.bin')))).toBe(true);
});

test('restore --from remote makes what it wrote durable (a syncfs) before it reports success', async () => {
  // Files are no longer fsynced one by one: the one syncfs at the end must come before the
  // success line, or a host crash just after "every file matched" could lose restored files.
  const s = await backedUp();
  const target = join(s.dir, 'restored');
  const trace = join(s.dir, 'strace.txt');
  const res = await execa('strace', ['-f', '-qq', '-s', '4000', '-e', 'trace=syncfs,write', '-o', trace, 'node', bin('l2backup'), 'restore', 'latest', '--from', 'remote', '--target', target], { env: s.env, extendEnv: false, reject: false, all: true });
  expect(res.exitCode).toBe(0);
  const lines = readFileSync(trace, 'utf8').split('\n');
  const synced = lines.findIndex((l) => /syncfs\(\d+\)\s+= 0/.test(l));
  const success = lines.findIndex((l) => /write\(2, ".*restored snapshot .*every file matched/.test(l));
  expect(success).toBeGreaterThan(-1);
  expect(synced).toBeGreaterThan(-1);
  expect(synced).toBeLessThan(success);
  expect((await sh(`diff -r '${s.models}' '${join(target, 'models')}'`)).exitCode).toBe(0);
});

test('small objects (fetched into memory, written in one go) damaged or grown on the server are refused; nothing is left in their place', async () => {
  const s = await backedUp();
  const objects = `${s.prefix}/snapshots/${s.id}/models/set-3/inner`;
  const damaged = s3.objectPath(`${objects}/f2 & ü.txt`);
  const fd = openSync(damaged, 'r+');
  writeSync(fd, Buffer.from('XY'), 0, 2, 40);
  closeSync(fd);
  writeFileSync(s3.objectPath(`${objects}/f5 & ü.txt`), randomBytes(600 * 1024)); // far past its file-list size
  const target = join(s.dir, 'restored');
  const inner = join(target, 'models/set-3/inner');
  mkdirSync(inner, { recursive: true });
  writeFileSync(join(inner, 'f2 & ü.txt'), 'was here 2');
  writeFileSync(join(inner, 'f5 & ü.txt'), 'was here 5');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/models\/set-3\/inner\/f2 & ü\.txt: content does not match the manifest/);
  expect(res.stderr).toMatch(/models\/set-3\/inner\/f5 & ü\.txt: content does not match the manifest/);
  expect(readFileSync(join(inner, 'f2 & ü.txt'), 'utf8')).toBe('was here 2');
  expect(readFileSync(join(inner, 'f5 & ü.txt'), 'utf8')).toBe('was here 5');
  expect((await sh(`ls -A '${inner}' | grep -c l2restore`)).all).toBe('0');
  expect(readFileSync(join(inner, 'f4 & ü.txt')).equals(readFileSync(join(s.models, 'set-3/inner/f4 & ü.txt')))).toBe(true);
});

/** A proxy in front of the server that never answers a GET whose path holds `marker` (and says when one came). */
async function holdingProxy(marker: string): Promise<{ url: string; held: Promise<void>; close: () => Promise<void> }> {
  const up = new URL(s3.endpoint);
  const sockets = new Set<Socket>();
  let onHeld!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.includes(marker)) return onHeld();
    const fwd = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  server.on('connection', (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held,
    close: async () => {
      for (const c of sockets) c.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test('a remote restore stopped by SIGTERM mid-way: exit 1, never "every file matched", no temp file left, every file in place byte-exact', async () => {
  const s = await backedUp();
  const proxy = await holdingProxy(encodeURIComponent('f14 & ü.txt'));
  try {
    const target = join(s.dir, 'restored');
    const child = tracked(execa('node', [bin('l2backup'), 'restore', 'latest', '--from', 'remote', '--target', target], { env: { ...s.env, S3_ENDPOINT: proxy.url }, extendEnv: false, reject: false, all: true }));
    await proxy.held;
    child.kill('SIGTERM');
    const res = await child;
    expect(res.exitCode).toBe(1);
    expect(String(res.all)).toMatch(/interrupted by SIGTERM/);
    expect(String(res.all)).not.toMatch(/every file matched/);
    const left = (await sh(`find '${target}' -name '.l2restore-*'`)).all;
    expect(left).toBe('');
    const files = (await sh(`cd '${join(target, 'models')}' && find . -type f`)).all!.split('\n').filter(Boolean);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(readFileSync(join(target, 'models', f)).equals(readFileSync(join(s.models, f)))).toBe(true);
    expect(files).not.toContain('./set-0/inner/f14 & ü.txt');
  } finally {
    await proxy.close();
  }
});
