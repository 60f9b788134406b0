/**
 * An operator's attack (a15) on the lean remote downloads (src/backup/s3-get.ts, one syncfs per
 * restore, small objects in memory) and on the light start-up (fd sinks, spawnSync crontab).
 * Real dev S3 server on 127.0.0.1, the built bin/ programs as child processes, libfaketime for
 * a skewed clock, a real tmpfs mount for a second filesystem, fake `crontab` programs on PATH.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import http from 'node:http';
import { listenLocal, passThrough } from '../helpers/listen.js';
import { bin, run, sandbox } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { remoteSandbox, withS3Server } from '../helpers/s3.js';
import { fakeTimeEnv, LIBFAKETIME } from '../helpers/faketime.js';


const s3 = withS3Server();

async function backedUp(tag: string) {
  const s = remoteSandbox(s3, tag);
  const res = await run('l2backup', ['nightly'], s.env);
  expect(res.exitCode).toBe(0);
  const [id] = snapshots(s.root);
  return { ...s, id: id! };
}


test('restore --from remote on a host whose clock is an hour off: the lean GETs correct for the skew as the SDK does (RequestTimeTooSkewed)', async () => {
  const s = await backedUp('skew');
  rmSync(join(s.root, s.id), { recursive: true, force: true });
  const target = join(s.dir, 'restored');
  const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', target, '--no-pre-restore'], fakeTimeEnv(s.env, '+1h'));
  expect(res.stderr).not.toMatch(/Skewed|RequestTime/i);
  expect(res.exitCode).toBe(0);
  expect(readFileSync(join(target, 'models/model.bin')).equals(readFileSync(join(s.data, 'models/model.bin')))).toBe(true);
  rmSync(s.dir, { recursive: true, force: true });
});

test('restore --from remote whose host clock jumps an hour mid-way (NTP step, VM resumed): the lean GETs correct for the skew and retry, as the SDK does', async () => {
  const s = await backedUp('jump');
  const clock = join(s.dir, 'clock');
  writeFileSync(clock, '+0\n');
  // The clock jumps once the manifest is asked for: every GET after it is signed an hour off.
  const proxy = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.includes('.l2-manifest.json')) writeFileSync(clock, '+1h\n');
    passThrough(req, res, new URL(s3.endpoint));
  });
  const listening = await listenLocal(proxy);
  try {
    const env = { ...s.env, S3_ENDPOINT: listening.url, LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: clock, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
    const target = join(s.dir, 'restored');
    const res = await run('l2backup', ['restore', s.id, '--from', 'remote', '--target', target, '--no-pre-restore'], env);
    expect(res.stderr).not.toMatch(/Skewed|RequestTime/i);
    expect(res.exitCode).toBe(0);
    expect(readFileSync(join(target, 'models/model.bin')).equals(readFileSync(join(s.data, 'models/model.bin')))).toBe(true);
  } finally {
    await listening.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('restore --from remote into a folder that is another filesystem (a mount below the target): what lands there is made durable too', async () => {
  const s = await backedUp('mnt');
  const target = join(s.dir, 'restored');
  const mounted = join(target, 'logs/2025');
  mkdirSync(mounted, { recursive: true });
  const mount = await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'a15tmpfs', mounted], { reject: false, all: true });
  expect(mount.exitCode).toBe(0);
  try {
    const trace = join(s.dir, 'strace.txt');
    const res = await execa('strace', ['-f', '-y', '-qq', '-e', 'trace=syncfs,fsync,fdatasync', '-o', trace, 'node', bin('l2backup'), 'restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], { env: s.env, extendEnv: false, reject: false, all: true });
    expect(res.exitCode).toBe(0);
    expect(readFileSync(join(mounted, '10/fills-3.log'), 'utf8')).toBe('fill 3\n'.repeat(50));
    // Every filesystem the restore wrote to got a syncfs (or every file there an fsync).
    const syncedDevs = new Set<number>();
    for (const m of readFileSync(trace, 'utf8').matchAll(/(?:syncfs|fsync|fdatasync)\(\d+<([^>]+)>\)\s+= 0/g)) {
      try {
        syncedDevs.add(statSync(m[1]!).dev);
      } catch {}
    }
    expect(syncedDevs.has(statSync(join(target, 'models')).dev)).toBe(true);
    expect(syncedDevs.has(statSync(mounted).dev)).toBe(true);
  } finally {
    await execa('umount', ['-l', mounted], { reject: false });
    rmSync(s.dir, { recursive: true, force: true });
  }
});

/** A sandbox whose PATH starts with a folder holding a fake `crontab` (shell `script`). */
function fakeCrontab(script: string) {
  const sb = sandbox();
  const fake = join(sb.dir, 'fakebin');
  mkdirSync(fake);
  writeFileSync(join(fake, 'crontab'), `#!/bin/sh\n${script}\n`);
  chmodSync(join(fake, 'crontab'), 0o755);
  sb.env.PATH = `${fake}:${sb.env.PATH}`;
  return sb;
}

test('status when `crontab -l` hangs and ignores SIGTERM: status still answers, with a warning', async () => {
  const sb = fakeCrontab(`trap '' TERM\necho $$ > "$HOME/crontab.pid"\nexec sleep 3600`);
  try {
    // Generous: the crontab is given 5 s; a status stuck on it for a minute is hung.
    const res = await run('l2backup', ['status'], sb.env, { timeout: 60_000 });
    expect(res.exitCode).not.toBe(-1);
    expect(res.all).toMatch(/crontab -l did not answer/);
  } finally {
    try {
      process.kill(Number(readFileSync(join(sb.dir, 'crontab.pid'), 'utf8')), 'SIGKILL');
    } catch {}
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

test('status when `crontab -l` prints megabytes: a warning that says so, not "the crontab command is not available here"', async () => {
  const sb = fakeCrontab(`head -c 3000000 /dev/zero | tr '\\0' '#'`);
  const res = await run('l2backup', ['status'], sb.env);
  expect(res.exitCode).not.toBe(-1);
  expect(res.all).not.toMatch(/not available/);
  expect(res.all).toMatch(/crontab -l printed more than/);
  rmSync(sb.dir, { recursive: true, force: true });
});

test('status when there is no `crontab` program at all: a warning that says so', async () => {
  const sb = sandbox();
  sb.env.PATH = '/nonexistent-a15';
  const res = await execa(process.execPath, [bin('l2backup'), 'status'], { env: sb.env, extendEnv: false, reject: false, all: true });
  expect(res.all).toMatch(/the crontab command is not available here/);
  rmSync(sb.dir, { recursive: true, force: true });
});

test.each([
  ['l2backup', ['config']],
  ['l2backup', ['status', '--json']],
  ['l2alert', ['buffer-status']],
] as const)('%s %s with stdout on a full device (/dev/full): one line naming standard output and where it goes, exit 1, not "the volume is full"', async (program, args) => {
  const sb = sandbox();
  const cmd = `exec node '${bin(program)}' ${args.join(' ')} >/dev/full`;
  const res = await execa('sh', ['-c', cmd], { env: sb.env, extendEnv: false, reject: false });
  expect(res.exitCode).toBe(1);
  const lines = String(res.stderr).trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/standard output.*\/dev\/full.*ENOSPC/);
  expect(lines[0]).not.toMatch(/the volume is full|remount/);
  rmSync(sb.dir, { recursive: true, force: true });
});

test('restore --from remote of names S3 keys make hard: +, %, %41, ~, ?, #, *, quotes, ;=&, a backslash, unicode, a leading dash, spaces at the ends', async () => {
  const s = remoteSandbox(s3, 'keys');
  const names = ['a+b.txt', '100%.txt', '%41%2F.txt', '~tilde', 'q?x#y', "star*(x)!'", 'semi;colon=eq&amp', 'back\\slash', 'ü-ñ-日本.txt', '-dash', ' both ends ', 'é', 'e\u0301'];
  const dir = join(s.data, 'reports/hard');
  mkdirSync(dir);
  names.forEach((n, i) => writeFileSync(join(dir, n), `${i}:${n}\n`.repeat(i + 1)));
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const target = join(s.dir, 'restored');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], s.env);
  expect(res.stderr).not.toMatch(/ERROR|WARN/);
  expect(res.exitCode).toBe(0);
  names.forEach((n, i) => expect(readFileSync(join(target, 'reports/hard', n), 'utf8')).toBe(`${i}:${n}\n`.repeat(i + 1)));
  rmSync(s.dir, { recursive: true, force: true });
});

type Fault = (res: http.ServerResponse) => void;
const FAULTS: [string, Fault, RegExp][] = [
  ['403 without a body', (res) => res.writeHead(403, { 'content-length': '0' }).end(), /daily\.csv.*(Forbidden|403)/],
  ['301 without a body', (res) => res.writeHead(301, { 'content-length': '0' }).end(), /daily\.csv.*(PermanentRedirect|301)/],
  ['400 with an HTML body', (res) => res.writeHead(400, { 'content-type': 'text/html' }).end('<html><body>Bad Request</body></html>'), /daily\.csv.*400/],
  ['503 whose XML body never ends', (res) => {
    res.writeHead(503, { 'content-type': 'application/xml' });
    res.write('<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>wait');
  }, /daily\.csv/],
  ['200 that drops half-way', (res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('x'.repeat(500), () => res.socket?.destroy());
  }, /daily\.csv/],
  ['200 longer than the file list says', (res) => res.writeHead(200, { 'content-length': '5000' }).end('y'.repeat(5000)), /daily\.csv.*(does not match|bytes)/],
];

test.each(FAULTS)('restore --from remote where the GET of one small file meets %s: exit 1 naming it, the old file kept, no temp file, no hang', async (_what, fault, named) => {
  const s = await backedUp('err');
  const proxy = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.includes('daily.csv')) {
      req.resume();
      return fault(res);
    }
    passThrough(req, res, new URL(s3.endpoint));
  });
  const listening = await listenLocal(proxy);
  try {
    const target = join(s.dir, 'restored');
    mkdirSync(join(target, 'reports'), { recursive: true });
    writeFileSync(join(target, 'reports/daily.csv'), 'was here');
    const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], { ...s.env, S3_ENDPOINT: listening.url, S3_TIMEOUT_MS: '1000' });
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(named);
    expect(res.stderr).not.toMatch(/internal error| {4}at /);
    expect(readFileSync(join(target, 'reports/daily.csv'), 'utf8')).toBe('was here');
    expect((await execa('sh', ['-c', `find '${target}' -name '*l2restore*' | wc -l`])).stdout.trim()).toBe('0');
  } finally {
    await listening.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('restore --from remote: small files (written from memory) and large ones get their exact mode and mtime, whatever the umask', async () => {
  const s = remoteSandbox(s3, 'mode');
  const dir = join(s.data, 'configs/modes');
  mkdirSync(dir);
  const files: [string, number, number][] = [
    ['exec.sh', 0o755, 1_600_000_000.123456],
    ['shared.txt', 0o644, 1_500_000_000.5],
    ['private.key.txt', 0o600, 1_700_000_000.987654],
    ['setgid-ish', 0o2750, 1_234_567_890],
    ['big.bin', 0o640, 1_650_000_000.25],
  ];
  for (const [n, mode, t] of files) {
    writeFileSync(join(dir, n), n === 'big.bin' ? Buffer.alloc(600 * 1024, 3) : `${n}\n`);
    chmodSync(join(dir, n), mode);
    utimesSync(join(dir, n), t, t);
  }
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const target = join(s.dir, 'restored');
  const res = await execa('sh', ['-c', `umask 077; exec node '${bin('l2backup')}' restore latest --from remote --target '${target}' --no-pre-restore`], { env: s.env, extendEnv: false, reject: false, all: true });
  expect(res.exitCode).toBe(0);
  for (const [n] of files) {
    const want = statSync(join(dir, n), { bigint: true });
    const got = statSync(join(target, 'configs/modes', n), { bigint: true });
    expect([n, (got.mode & 0o7777n).toString(8), got.mtimeNs]).toEqual([n, (want.mode & 0o7777n).toString(8), want.mtimeNs]);
  }
  rmSync(s.dir, { recursive: true, force: true });
});

test('SIGTERM while the restore makes its files durable (the final syncfs): no success is claimed before that sync is done', async () => {
  const s = await backedUp('term');
  const fake = join(s.dir, 'fakebin');
  mkdirSync(fake);
  const mark = join(s.dir, 'sync-started');
  const fifo = join(s.dir, 'sync-go');
  await execa('mkfifo', [fifo]);
  writeFileSync(join(fake, 'sync'), `#!/bin/sh\ntouch '${mark}'\nread go < '${fifo}'\nexec /bin/sync "$@"\n`);
  chmodSync(join(fake, 'sync'), 0o755);
  const target = join(s.dir, 'restored');
  const child = execa('node', [bin('l2backup'), 'restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], { env: { ...s.env, PATH: `${fake}:${s.env.PATH}` }, extendEnv: false, reject: false, all: true });
  let over = false;
  const ended = child.then(() => (over = true));
  while (!existsSync(mark) && !over) await Promise.race([ended, new Promise((r) => setTimeout(r, 50))]);
  expect(existsSync(mark)).toBe(true);
  let seen = '';
  const heard = new Promise<void>((resolve) =>
    child.all!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('received SIGTERM')) resolve();
    }),
  );
  child.kill('SIGTERM');
  await Promise.race([heard, ended]);
  // The signal was taken while the sync had not finished: the run must still be waiting for it.
  expect(child.exitCode).toBeNull();
  expect(seen).not.toMatch(/restored snapshot/);
  writeFileSync(fifo, 'go\n');
  const done = await child;
  // Everything was written and is now durable: the restore may say so (or say it stopped), never fail half-way.
  expect(done.all).toMatch(/every file matched/);
  expect(done.exitCode).toBe(0);
  expect(readFileSync(join(target, 'models/model.bin')).equals(readFileSync(join(s.data, 'models/model.bin')))).toBe(true);
  rmSync(s.dir, { recursive: true, force: true });
});

test("secrets with neither '@' nor '=' (an S3 secret key, a webhook token in a path segment, a webhook secret) never reach output or state files", async () => {
  const secrets = { S3_SECRET_ACCESS_KEY: 'wJalr/XUtn+FEMIK7MDENGbPxRfiCY', ALERT_WEBHOOK_URL: 'http://LOCALHOST:9/services/T000/B000/SeCrEtToKeN1234', ALERT_WEBHOOK_SECRET: 'plainsecretvalue42' };
  const words = ['wJalr', 'FEMIK7', 'SeCrEtToKeN', 'plainsecret'];
  const sb = sandbox({ ...secrets, S3_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', BACKUP_BUCKET: 's3://l2trading-staging/x', S3_ENDPOINT: `http://127.0.0.1:9` });
  const runs = [
    await run('l2backup', ['config'], sb.env),
    await run('l2backup', ['config', '--json'], sb.env),
    await run('l2backup', ['status', '--json'], sb.env),
    await run('l2alert', ['config', '--json'], sb.env),
    await run('l2alert', ['test'], sb.env),
    await run('l2alert', ['buffer-status', '--json'], sb.env),
  ];
  for (const r of runs) for (const w of words) expect(r.all).not.toContain(w);
  const grep = await execa('grep', ['-rlE', words.join('|'), sb.root], { reject: false });
  expect(grep.stdout).toBe('');
  rmSync(sb.dir, { recursive: true, force: true });
});

test('a light command writing to a full non-blocking pipe (O_NONBLOCK, 4 KiB, its reader behind) waits for the reader: every byte arrives, exit 0', async () => {
  const sb = sandbox({ BACKUP_SOURCES: Array.from({ length: 300 }, (_, i) => `src${i}=/nonexistent/a15/data-${i}`).join(',') });
  // The pipe is made by python (Node has no pipe(2)); the reader reads 4 KiB at a time.
  const script = `
import os, fcntl, subprocess, sys
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ
os.set_blocking(w, False)
p = subprocess.Popen([sys.argv[1], sys.argv[2], 'config'], stdout=w)
os.close(w)
n = 0
while True:
    b = os.read(r, 4096)
    if not b: break
    n += len(b)
print(p.wait(), n)
`;
  const piped = await execa('python3', ['-c', script, process.execPath, bin('l2backup')], { env: sb.env, extendEnv: false, reject: false });
  const direct = await run('l2backup', ['config'], sb.env);
  expect(direct.exitCode).toBe(0);
  expect(piped.stdout.trim()).toBe(`0 ${Buffer.byteLength(direct.stdout) + 1}`);
  rmSync(sb.dir, { recursive: true, force: true });
});

test.each(['trailing slash', 'https'])('restore --from remote through an S3_ENDPOINT with a %s: the lean GETs go where the SDK commands go', async (kind) => {
  const s = await backedUp('ep');
  let endpoint = `${s3.endpoint}/`;
  let extra: Record<string, string> = {};
  let close = async () => {};
  if (kind === 'https') {
    // TLS in front of the dev server: the bytes pass unchanged, so the signature (over the host) holds.
    const key = join(s.dir, 'key.pem');
    const cert = join(s.dir, 'cert.pem');
    const made = await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { reject: false, all: true });
    expect(made.exitCode).toBe(0);
    const tls = await import('node:tls');
    const net = await import('node:net');
    const server = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (sock) => {
      const up = net.connect(s3.port, '127.0.0.1');
      sock.pipe(up).pipe(sock);
      sock.on('error', () => up.destroy());
      up.on('error', () => sock.destroy());
    });
    const listening = await listenLocal(server);
    endpoint = `https://127.0.0.1:${listening.port}`;
    extra = { NODE_EXTRA_CA_CERTS: cert };
    close = listening.close;
  }
  try {
    const target = join(s.dir, 'restored');
    const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], { ...s.env, ...extra, S3_ENDPOINT: endpoint });
    expect(res.stderr).not.toMatch(/ERROR/);
    expect(res.exitCode).toBe(0);
    expect(readFileSync(join(target, 'models/model.bin')).equals(readFileSync(join(s.data, 'models/model.bin')))).toBe(true);
  } finally {
    await close();
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('restore --from remote with temporary credentials (AWS_* from the environment, a session token): every GET carries the token', async () => {
  const s = await backedUp('sts');
  const seen: { method: string; token: boolean; signed: boolean }[] = [];
  const proxy = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', token: req.headers['x-amz-security-token'] === 'TOKEN-a15', signed: /x-amz-security-token/.test(String(req.headers.authorization)) });
    passThrough(req, res, new URL(s3.endpoint));
  });
  const listening = await listenLocal(proxy);
  try {
    const env: Record<string, string> = { ...s.env, S3_ENDPOINT: listening.url, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_SESSION_TOKEN: 'TOKEN-a15' };
    delete env.S3_ACCESS_KEY_ID;
    delete env.S3_SECRET_ACCESS_KEY;
    const target = join(s.dir, 'restored');
    const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], env);
    expect(res.stderr).not.toMatch(/ERROR/);
    expect(res.exitCode).toBe(0);
    const gets = seen.filter((r) => r.method === 'GET');
    expect(gets.length).toBeGreaterThan(20);
    expect(gets.filter((r) => !r.token || !r.signed)).toEqual([]);
    expect(res.all).not.toContain('TOKEN-a15');
  } finally {
    await listening.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('restore --from remote that fails half-way (one GET refused): the files it already put in place are made durable before it exits', async () => {
  // Each file used to be fsynced before its rename; now one syncfs at the end does it. A run
  // that fails after replacing files must still sync them, or a crash after the failure can
  // leave empty files where the operator's old ones were.
  const s = await backedUp('half');
  const proxy = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.includes('daily.csv')) {
      req.resume();
      return res.writeHead(403, { 'content-length': '0' }).end();
    }
    passThrough(req, res, new URL(s3.endpoint));
  });
  const listening = await listenLocal(proxy);
  try {
    const target = join(s.dir, 'restored');
    const trace = join(s.dir, 'strace.txt');
    const res = await execa('strace', ['-f', '-y', '-qq', '-e', 'trace=syncfs,fsync,fdatasync', '-o', trace, 'node', bin('l2backup'), 'restore', 'latest', '--from', 'remote', '--target', target, '--no-pre-restore'], { env: { ...s.env, S3_ENDPOINT: listening.url }, extendEnv: false, reject: false, all: true });
    expect(res.exitCode).toBe(1);
    expect(readFileSync(join(target, 'models/model.bin')).equals(readFileSync(join(s.data, 'models/model.bin')))).toBe(true);
    const synced = [...readFileSync(trace, 'utf8').matchAll(/syncfs\(\d+<([^>]+)>\)\s+= 0/g)].map((m) => m[1]!);
    expect(synced.filter((p) => p.startsWith(target))).not.toEqual([]);
  } finally {
    await listening.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
});
