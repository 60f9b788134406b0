/**
 * Attacks on retention, "latest" and the remote (built binary as a child process, real S3 dev
 * server, libfaketime). Each test fails on the code under attack.
 */
import http from 'node:http';
import { constants, openSync, closeSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { run, sandbox as makeSandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { withS3Server, s3Env, type TestS3 } from '../helpers/s3.js';
import { deadPort } from '../helpers/receiver.js';
import { listenLocal, passThrough } from '../helpers/listen.js';
import { fakeTimeEnv as at } from '../helpers/faketime.js';

const dirs: string[] = [];
const sandbox = () => {
  const sb = makeSandbox();
  dirs.push(sb.dir);
  return sb;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});


function offline(extra: Record<string, string> = {}) {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  Object.assign(sb.env, { BACKUP_BUCKET: 's3://l2trading-staging', S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER', S3_TIMEOUT_MS: '1000', BACKUP_SOURCES: sources, ...extra });
  return { ...sb, data };
}

test('a pending snapshot whose remote record is damaged is neither uploaded nor kept: retention deletes a never-uploaded snapshot', async () => {
  const s = offline();
  const dead = `http://127.0.0.1:${await deadPort()}`;
  expect((await run('l2backup', ['nightly'], { ...s.env, S3_ENDPOINT: dead })).exitCode).toBe(1);
  const [first] = snapshots(s.root);
  const rec = join(s.root, '.l2/backup/remote', `${first}.json`);
  expect(JSON.parse(readFileSync(rec, 'utf8')).state).toBe('pending');
  // One damaged state file (a torn write, a bad sector): the record is set aside as "corrupt".
  writeFileSync(rec, '{"id":"' + first + '","state":"pend');
  // Ten days on, the remote still down: the first snapshot was never uploaded anywhere.
  const later = await run('l2backup', ['nightly'], at({ ...s.env, S3_ENDPOINT: dead }, '+10d'));
  expect(later.all).not.toMatch(new RegExp(`retention: deleted snapshot ${first}`));
  expect(snapshots(s.root)).toContain(first);
});

/**
 * A proxy in front of the S3 dev server that answers ListObjectsV2 with the real headers, then
 * drips the real body a few bytes at a time, each drip well inside S3_TIMEOUT_MS of silence.
 */
async function drippingProxy(upstream: string, bytes: number, everyMs: number) {
  const target = new URL(upstream);
  let resolveDone!: () => void;
  const dripDone = new Promise<void>((r) => (resolveDone = r));
  let drips = 0;
  const server = http.createServer((req, res) => {
    passThrough(req, res, target, (ur) => {
      if (!(req.method === 'GET' && /[?&]list-type=2/.test(req.url ?? ''))) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        drips++;
        let at = 0;
        const tick = () => {
          if (res.destroyed || res.socket?.destroyed) return;
          res.write(body.subarray(at, at + bytes));
          at += bytes;
          if (at >= body.length) {
            res.end();
            resolveDone();
          } else setTimeout(tick, everyMs);
        };
        tick();
      });
    });
  });
  const listening = await listenLocal(server);
  return {
    url: listening.url,
    dripDone,
    drips: () => drips,
    close: listening.close,
  };
}

describe('against the S3 dev server', () => {
  const s3 = withS3Server();

  test('"every S3 call is bounded": a listing that drips its body keeps a nightly (and its lock) far past 3 x 4 x S3_TIMEOUT_MS', async () => {
    const sb = sandbox();
    const { sources } = makeTree(sb.dir);
    const prefix = `d${Math.random().toString(36).slice(2, 8)}`;
    // 6 bytes every 700 ms: never 1 s of silence, but a ~400-byte listing takes ~45 s.
    const proxy = await drippingProxy(s3.endpoint, 6, 700);
    try {
      const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`, S3_ENDPOINT: proxy.url, S3_TIMEOUT_MS: '1000' }), BACKUP_SOURCES: sources };
      // README: "an answer within 4 x S3_TIMEOUT_MS, 3 attempts in all" -> the remote-retention
      // listing should give up after ~12 s, long before the drip is over.
      const nightly = run('l2backup', ['nightly'], env);
      const first = await Promise.race([nightly.then(() => 'run ended'), proxy.dripDone.then(() => 'drip finished first')]);
      await nightly;
      expect(proxy.drips()).toBeGreaterThan(0);
      expect(first).toBe('run ended');
    } finally {
      await proxy.close();
    }
  });
});

/** A sandbox backing up to a prefix of its own on `s3` (`tag` and six random characters), after one nightly whose endpoint refused connections: its snapshot stands pending. */
async function pendingSnapshot(s3: TestS3, tag: string) {
  const sb = sandbox();
  const { sources } = makeTree(sb.dir);
  const prefix = `${tag}${Math.random().toString(36).slice(2, 8)}`;
  const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}` }), BACKUP_SOURCES: sources };
  expect((await run('l2backup', ['nightly'], { ...env, S3_ENDPOINT: `http://127.0.0.1:${await deadPort()}`, S3_TIMEOUT_MS: '1000' })).exitCode).toBe(1);
  const [pending] = snapshots(sb.root);
  return { sb, env, pending };
}

describe('what the uploader opens', () => {
  const s3 = withS3Server();

  test('a snapshot file replaced by a FIFO is opened and read by the upload (a nightly blocks forever, lock held, until someone writes)', async () => {
    const { sb, env, pending } = await pendingSnapshot(s3, 'p');
    const fifo = join(sb.root, pending!, 'reports/daily.csv');
    rmSync(fifo);
    execFileSync('mkfifo', [fifo]);
    let ended = false;
    let openedByRun = false;
    const nightly = run('l2backup', ['nightly'], env).finally(() => (ended = true));
    // Event, not time: the moment the run has the FIFO open for reading, a non-blocking writer can open it.
    while (!ended) {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)); // EOF for the reader: the run goes on
        openedByRun = true;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await nightly;
    // Without our writer the run would block in open()/read() of the FIFO with the backup lock held.
    expect(openedByRun).toBe(false);
  });
});

describe('what the uploader opens: symlinks', () => {
  const s3 = withS3Server();

  test('a snapshot file replaced by a symlink to /dev/zero is not followed: the snapshot is skipped as damaged', async () => {
    const { sb, env, pending } = await pendingSnapshot(s3, 'z');
    const file = join(sb.root, pending!, 'reports/daily.csv');
    rmSync(file);
    symlinkSync('/dev/zero', file);
    const res = await run('l2backup', ['nightly'], env);
    expect(res.all).toMatch(new RegExp(`${pending} cannot be uploaded: .*symlink`));
    const rec = JSON.parse(readFileSync(join(sb.root, '.l2/backup/remote', `${pending}.json`), 'utf8'));
    expect(rec.state).toBe('skipped');
    // (Whether that run's own snapshot hard-linked the symlink from its base is snapshot.ts's
    // "damage must not spread" rule, not the uploader's; the run after it links from neither.)
    const later = await run('l2backup', ['nightly'], at(env, '+1d'));
    const newest = snapshots(sb.root).at(-1)!;
    expect(later.all).not.toMatch(new RegExp(`${newest} cannot be uploaded`));
    expect(JSON.parse(readFileSync(join(sb.root, '.l2/backup/remote', `${newest}.json`), 'utf8')).state).toBe('uploaded');
  });
});

describe('damage that spreads', () => {
  const s3 = withS3Server();

  test('one damaged byte in a pending snapshot: every later nightly hard-links the damaged file, is skipped too, and nothing reaches the remote again', async () => {
    const { sb, env, pending: damaged } = await pendingSnapshot(s3, 'h');
    const path = join(sb.root, damaged!, 'models/artifacts/scaler.pkl');
    const bytes = readFileSync(path);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(path, bytes); // the source file itself is intact and unchanged
    // README: the damaged one "is alerted, marked skipped, and passed over: newer snapshots still upload".
    const first = await run('l2backup', ['nightly'], env);
    // That run's own snapshot (linked from the damaged one) could not go up: not an "ok" run,
    // and the health check's record says the remote is behind.
    const lastRun = JSON.parse(readFileSync(join(sb.root, '.l2/backup/last-run.json'), 'utf8'));
    // (Same size, same mtime in the base: snapshot.ts links it, so this run's snapshot is damaged too.)
    expect(lastRun.remote).toMatch(/^skipped/);
    expect(first.exitCode).toBe(1);
    expect(lastRun.status).not.toBe('ok');
    const lastSuccess = JSON.parse(readFileSync(join(sb.root, '.l2/backup/last-success.json'), 'utf8'));
    expect(lastSuccess.remotePendingSince).toBeDefined();
    const second = await run('l2backup', ['nightly'], at(env, '+1d'));
    const newest = snapshots(sb.root).at(-1)!;
    expect(second.all).not.toMatch(new RegExp(`${newest} cannot be uploaded`));
    const rec = JSON.parse(readFileSync(join(sb.root, '.l2/backup/remote', `${newest}.json`), 'utf8'));
    expect(rec.state).toBe('uploaded');
  });
});

describe('remote ids', () => {
  const s3 = withS3Server();

  test('after the clock jumps back, a new snapshot takes the id of a remote snapshot that is only gone locally and overwrites it', async () => {
    const sb = sandbox();
    const { data, sources } = makeTree(sb.dir);
    const prefix = `c${Math.random().toString(36).slice(2, 8)}`;
    const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}` }), BACKUP_SOURCES: sources };
    const when = new Date(Date.now() - 5 * 86_400_000).toISOString().slice(0, 10);
    writeFileSync(join(data, 'reports/only-then.txt'), 'a report that existed five days ago\n');
    expect((await run('l2backup', ['nightly'], at(env, `@${when} 02:00:03`))).exitCode).toBe(0);
    const [old] = snapshots(sb.root);
    // Tonight's nightly uploads and applies local retention: the 5-day-old one goes locally, stays remote (90 days).
    rmSync(join(data, 'reports/only-then.txt'));
    expect((await run('l2backup', ['nightly'], env)).exitCode).toBe(0);
    expect(snapshots(sb.root)).not.toContain(old);
    // The host clock is reset to that night (RTC / bad NTP): the next nightly names the same minute.
    writeFileSync(join(data, 'reports/daily.csv'), 'date,pnl\n2025-10-09,-4\n');
    await run('l2backup', ['nightly'], at(env, `@${when} 02:00:03`));
    // The remote snapshot `old` must still be the one its manifest describes (no stray, no overwrite).
    const verify = await run('l2backup', ['verify', old!, '--remote'], env);
    // (The clean summary itself reads "0 missing, 0 changed, 0 extra": match counts, not words.)
    expect(verify.all).not.toMatch(/\b[1-9]\d* (extra|changed|missing)\b|MISMATCH/i);
    expect(verify.all).toMatch(/\b0 missing, 0 changed, 0 extra: OK/);
    expect(verify.exitCode).toBe(0);
    expect(snapshots(sb.root)).not.toContain(old);
  });
});
