/**
 * Remote copies that cannot be lost or faked, against the real S3 dev server, a real webhook
 * receiver and the built binary: a snapshot that can never be uploaded is alerted and skipped
 * (newer ones still go up), a damaged local copy never becomes a complete remote snapshot
 * (multipart too, and the multipart upload is aborted), a failed upload is "remote pending"
 * in the run record, status and l2health, and a server that accepts and never answers ends the
 * run with the lock released and an alert out.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { run } from '../helpers/run.js';
import { snapshots } from '../helpers/tree.js';
import { withS3Server, remoteSandbox } from '../helpers/s3.js';
import { deadPort, withReceiver } from '../helpers/receiver.js';
import { LIBFAKETIME } from '../helpers/faketime.js';

const s3 = withS3Server();
const hook = withReceiver();

const setup = (extra: Record<string, string> = {}) => remoteSandbox(s3, 'f', { BACKUP_MULTIPART_MB: '5', ALERT_WEBHOOK_URL: hook.url, ALERT_MIN_INTERVAL_MS: '0' }, extra);

const remoteRecord = (root: string, id: string) => JSON.parse(readFileSync(join(root, '.l2/backup/remote', `${id}.json`), 'utf8'));
const remoteList = async (env: Record<string, string>) => JSON.parse((await run('l2backup', ['list', '--remote', '--json'], env)).stdout) as { id: string; complete: boolean }[];
const alerts = (title: string) => hook.received.filter((r) => r.body.text.includes(title));
/** A nightly whose S3 endpoint refuses connections: the snapshot stays local, remote pending. */
const nightlyOffline = async (env: Record<string, string>) => run('l2backup', ['nightly'], { ...env, S3_ENDPOINT: `http://127.0.0.1:${await deadPort()}`, ALERT_BUDGET_MS: '3000', ALERT_TIMEOUT_MS: '1000' });
/** Flips one byte of a file in a snapshot (same size, same inode): a damaged local copy. */
function damage(path: string) {
  const bytes = readFileSync(path);
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
  writeFileSync(path, bytes);
}

test('a damaged pending snapshot is alerted and skipped; newer snapshots still upload; it no longer blocks or fills the volume', async () => {
  const s = setup();
  expect((await nightlyOffline(s.env)).exitCode).toBe(1);
  const [damaged] = snapshots(s.root);
  expect(remoteRecord(s.root, damaged!).state).toBe('pending');
  damage(join(s.root, damaged!, 'reports/daily.csv'));
  writeFileSync(join(s.data, 'reports/daily.csv'), 'date,pnl\n2025-10-04,3.5\n');
  const second = await run('l2backup', ['nightly'], s.env);
  expect(second.stderr).toMatch(new RegExp(`${damaged} cannot be uploaded: .*reports/daily.csv no longer matches its manifest`));
  expect(second.exitCode).toBe(1);
  const newer = snapshots(s.root).find((id) => id !== damaged)!;
  expect(remoteRecord(s.root, newer).state).toBe('uploaded');
  expect(remoteRecord(s.root, damaged!).state).toBe('skipped');
  expect(alerts('backup upload skipped').some((a) => a.body.text.includes(damaged!))).toBe(true);
  expect(await remoteList(s.env)).toEqual([{ id: newer, complete: true }]);
  expect((await run('l2backup', ['verify', newer, '--remote'], s.env)).exitCode).toBe(0);
  const third = await run('l2backup', ['nightly'], s.env);
  expect(third.exitCode).toBe(0);
  const st = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(st.remote.pending).toEqual([]);
  expect(st.remote.skipped).toEqual([damaged]);
  // No longer pending, it ages out like any other snapshot (here: ten days on).
  const later = await run('l2backup', ['prune', '--dry-run'], { ...s.env, LD_PRELOAD: LIBFAKETIME, FAKETIME: '+10d' });
  expect(later.stdout).toMatch(new RegExp(`would delete: .*${damaged}`));
});

test('a key the server rejects for good (KeyTooLongError) is alerted and skipped; the next snapshot uploads', async () => {
  const s = setup();
  const deep = join(s.data, 'models', ...Array.from({ length: 5 }, (_, i) => `${i}${'d'.repeat(200)}`));
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'weights.bin'), 'w');
  const first = await run('l2backup', ['nightly'], s.env);
  expect(first.exitCode).toBe(1);
  expect(first.stderr).toMatch(/cannot be uploaded: S3 rejects the key .* for good \(KeyTooLongError\)/);
  const [rejected] = snapshots(s.root);
  expect(remoteRecord(s.root, rejected!).state).toBe('skipped');
  rmSync(join(s.data, 'models', `0${'d'.repeat(200)}`), { recursive: true });
  const second = await run('l2backup', ['nightly'], s.env);
  expect(second.exitCode).toBe(0);
  const newer = snapshots(s.root).find((id) => id !== rejected)!;
  expect(remoteRecord(s.root, newer).state).toBe('uploaded');
  expect(await remoteList(s.env)).toEqual([{ id: newer, complete: true }]);
});

test('a damaged large file never becomes a complete remote snapshot: hashed as sent, multipart upload aborted', async () => {
  const s = setup();
  writeFileSync(join(s.data, 'models/large.bin'), Buffer.alloc(6 * 1024 * 1024, 7));
  expect((await nightlyOffline(s.env)).exitCode).toBe(1);
  const [damaged] = snapshots(s.root);
  damage(join(s.root, damaged!, 'models/large.bin'));
  writeFileSync(join(s.data, 'models/large.bin'), Buffer.alloc(6 * 1024 * 1024, 8));
  const second = await run('l2backup', ['nightly'], s.env);
  expect(second.stderr).toMatch(new RegExp(`${damaged} cannot be uploaded: .*large.bin no longer matches its manifest`));
  const newer = snapshots(s.root).find((id) => id !== damaged)!;
  expect(remoteRecord(s.root, damaged!).state).toBe('skipped');
  expect(remoteRecord(s.root, newer).state).toBe('uploaded');
  const list = await remoteList(s.env);
  expect(list).toEqual([{ id: newer, complete: true }]);
  expect(existsSync(s3.objectPath(`${s.prefix}/snapshots/${damaged}/models/large.bin`))).toBe(false);
  // No multipart upload of the damaged file is left on the server.
  const uploads = join(s3.dir, s3.bucket, '._S3rver_uploads');
  const left = existsSync(uploads) ? readdirSync(uploads).filter((u) => readFileSync(join(uploads, u, 'key'), 'utf8').includes(damaged!)) : [];
  expect(left).toEqual([]);
  expect((await run('l2backup', ['verify', newer, '--remote'], s.env)).exitCode).toBe(0);
});

test('a nightly whose upload failed is not ok: run record, status and l2health say "remote pending"; DOWN past BACKUP_MAX_AGE_HOURS', async () => {
  const s = setup({ HEALTH_ENDPOINTS: `algo=http://127.0.0.1:${await deadPort()}/health`, HEALTH_TIMEOUT_MS: '1000', BACKUP_MAX_AGE_HOURS: '26' });
  // Two days ago, and tonight: the remote refused both times.
  expect((await nightlyOffline({ ...s.env, LD_PRELOAD: LIBFAKETIME, FAKETIME: '-2d' })).exitCode).toBe(1);
  const tonight = await nightlyOffline(s.env);
  expect(tonight.exitCode).toBe(1);
  expect(tonight.stderr).toMatch(/ALERT .*backup upload failed: .*local ok, remote pending since/);
  const [first] = snapshots(s.root);
  const firstFinished = JSON.parse(readFileSync(join(s.root, first!, '.l2-manifest.json'), 'utf8')).finishedAt;
  const st = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(st.lastRun.status).toBe('pending');
  expect(st.lastSuccess.remotePendingSince).toBe(firstFinished);
  expect(st.remote.pendingSince).toBe(firstFinished);
  const human = await run('l2backup', ['status'], s.env);
  expect(human.stdout).toContain(`local ok, remote pending since ${firstFinished}`);
  const backupCheck = async () => JSON.parse((await run('l2health', ['once', '--json'], s.env)).stdout).results.find((r: { name: string }) => r.name === 'backup');
  expect(await backupCheck()).toMatchObject({ status: 'down', reason: expect.stringMatching(/remote copy pending for .*max 26 h/) });
  // The remote is back: the upload catches up and the check is UP again.
  const up = await run('l2backup', ['upload'], s.env);
  expect(up.exitCode).toBe(0);
  expect(JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout).lastSuccess.remotePendingSince).toBeUndefined();
  expect((await backupCheck()).status).toBe('up');
});

test('a server that accepts and never answers ends the run within a few S3_TIMEOUT_MS: exit 1, lock released, alert sent', async () => {
  const sockets = new Set<net.Socket>();
  const hung = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  try {
    const s = setup({ S3_ENDPOINT: `http://127.0.0.1:${(hung.address() as net.AddressInfo).port}`, S3_TIMEOUT_MS: '1000', ALERT_TIMEOUT_MS: '2000' });
    const before = alerts('backup upload failed').length;
    // (the 100 s child timeout only stops a hung test; it is not the assertion)
    const res = await run('l2backup', ['nightly'], s.env, { timeout: 100_000 });
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(/upload of \d{8}-\d{6} .*failed: .*timed out/);
    expect(alerts('backup upload failed').length).toBe(before + 1);
    const st = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
    expect(st.lock).toBeNull();
    expect(st.remote.pending).toEqual(snapshots(s.root));
    for (const cmd of [['check-remote'], ['list', '--remote']]) {
      const r = await run('l2backup', cmd, s.env, { timeout: 100_000 });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/timed out/);
    }
  } finally {
    for (const sock of sockets) sock.destroy();
    await new Promise<void>((r) => hung.close(() => r()));
  }
}, 400_000);

test('remote "latest" is the newest nightly/snapshot by recorded finish time, never a capture uploaded with --upload', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [nightly] = snapshots(s.root);
  writeFileSync(join(s.data, 'reports/daily.csv'), 'state right before a restore\n');
  expect((await run('l2backup', ['emergency-pre-restore', '--upload'], s.env)).exitCode).toBe(0);
  expect((await remoteList(s.env)).filter((r) => r.complete)).toHaveLength(2);
  const target = join(s.dir, 'from-remote');
  const res = await run('l2backup', ['restore', 'latest', '--from', 'remote', '--only', 'reports', '--target', target], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toContain(`restored snapshot ${nightly} (remote)`);
  expect(readFileSync(join(target, 'reports/daily.csv'), 'utf8')).toBe('date,pnl\n2025-10-03,12.5\n');
  // Nor does the capture count as the last successful backup.
  expect(JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout).lastSuccess.id).toBe(nightly);
});
