/**
 * `l2backup drill` against the real dev S3 server, run as the built program: a clean drill from
 * each side (figures recorded, nothing left behind, the live tree untouched), a drill that meets
 * a flipped byte and a missing object on the remote, a drill stopped by SIGTERM (and one killed
 * outright), and bad input.
 */
import http from 'node:http';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run } from '../helpers/run.js';
import { listenLocal, passThrough } from '../helpers/listen.js';
import { snapshots } from '../helpers/tree.js';
import { withS3Server, remoteSandbox } from '../helpers/s3.js';
import { withReceiver } from '../helpers/receiver.js';
import { testUser, tracked, waitFor } from '../helpers/cleanup.js';
import { holdBackupLock, treeBytes } from '../helpers/snap.js';

const s3 = withS3Server();
const hook = withReceiver();
// Nightlies in different tests may get the same id (a nightly names its minute): each test reads only its own alerts.
beforeEach(() => {
  hook.received.length = 0;
});

const setup = (extra: Record<string, string> = {}) => remoteSandbox(s3, 'd', { ALERT_WEBHOOK_URL: hook.url, ALERT_MIN_INTERVAL_MS: '0' }, extra);

const aws = (args: string[]) =>
  execa('aws', [...args, '--endpoint-url', s3.endpoint, '--only-show-errors'], { reject: false, all: true, env: { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1' } });
const drillDir = (root: string) => join(root, '.l2/drill');
const leftovers = (root: string) => (existsSync(drillDir(root)) ? readdirSync(drillDir(root)) : []);
const lastDrill = (root: string) => JSON.parse(readFileSync(join(root, '.l2/backup/last-drill.json'), 'utf8'));
const alertsAbout = (marker: string) => hook.received.filter((r) => r.body.text.includes(marker));

test('a clean drill, local then remote: figures recorded, status shows them, nothing left behind, live tree untouched', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [id] = snapshots(s.root);
  const files = JSON.parse(readFileSync(join(s.root, id!, '.l2-manifest.json'), 'utf8')).totals;
  const live = treeBytes(s.data);

  for (const from of ['local', 'remote'] as const) {
    const res = await run('l2backup', ['drill', '--from', from, '--json'], s.env);
    expect(res.exitCode).toBe(0);
    const rec = JSON.parse(res.stdout);
    expect(rec).toMatchObject({ status: 'ok', from, id, sample: 1, files: files.files, bytes: files.bytes, mismatches: 0, missing: 0 });
    expect(rec.restoreMs).toEqual(expect.any(Number));
    expect(lastDrill(s.root)).toEqual(rec);
    expect(res.stderr).toMatch(new RegExp(`drill OK: snapshot ${id} from ${from}: ${files.files} files, .* restored in `));
    expect(leftovers(s.root)).toEqual([]);
  }
  expect(treeBytes(s.data)).toEqual(live);
  expect(alertsAbout(`snapshot ${id} from remote`).map((a) => a.body.text)).toEqual([expect.stringContaining('restore drill ok')]);

  const status = await run('l2backup', ['status', '--json'], s.env);
  expect(JSON.parse(status.stdout).lastDrill).toMatchObject({ status: 'ok', from: 'remote', id, files: files.files, bytes: files.bytes });
  const text = await run('l2backup', ['status'], s.env);
  expect(text.stdout).toMatch(new RegExp(`last drill: +OK .* ago: snapshot ${id} from remote: ${files.files} files, .* restored in `));

  // A sample restores some of the files and says what the whole would take.
  const sample = await run('l2backup', ['drill', '--sample', '25%', '--json'], s.env);
  expect(sample.exitCode).toBe(0);
  const srec = JSON.parse(sample.stdout);
  expect(srec).toMatchObject({ status: 'ok', sample: 0.25, totalFiles: files.files, totalBytes: files.bytes });
  expect(srec.files).toBe(Math.round(files.files * 0.25));
  expect(leftovers(s.root)).toEqual([]);
  expect(treeBytes(s.data)).toEqual(live);
});

test('a drill that meets a flipped byte and a missing object on the remote: exit 1, alert naming the files, nothing left behind', async () => {
  const s = setup();
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const [id] = snapshots(s.root);
  const base = `s3://${s3.bucket}/${s.prefix}/snapshots/${id}`;
  // Flip one byte of an object and write it back through the S3 API, as a damaged copy would be.
  const local = join(s.dir, 'daily.csv');
  expect((await aws(['s3', 'cp', `${base}/reports/daily.csv`, local])).exitCode).toBe(0);
  const bytes = readFileSync(local);
  bytes[0] = bytes[0]! ^ 1;
  writeFileSync(local, bytes);
  expect((await aws(['s3', 'cp', local, `${base}/reports/daily.csv`])).exitCode).toBe(0);
  expect((await aws(['s3', 'rm', `${base}/logs/guardrails.log`])).exitCode).toBe(0);
  const live = treeBytes(s.data);

  const res = await run('l2backup', ['drill', '--from', 'remote'], s.env);
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/reports\/daily\.csv: content does not match the manifest/);
  expect(res.stderr).toMatch(/logs\/guardrails\.log: missing from the snapshot/);
  expect(res.stderr).toMatch(/ALERT l2backup: \[error\] restore drill FAILED/);
  const rec = lastDrill(s.root);
  expect(rec).toMatchObject({ status: 'failed', from: 'remote', id, mismatches: 1, missing: 1 });
  expect(rec.problems).toEqual(['changed: reports/daily.csv', 'missing: logs/guardrails.log']);
  const [alert] = alertsAbout(`snapshot ${id} from remote`);
  expect(alert!.body.text).toMatch(/restore drill FAILED/);
  expect(alert!.body.text).toContain('reports/daily.csv');
  expect(alert!.body.text).toContain('logs/guardrails.log');
  expect(leftovers(s.root)).toEqual([]);
  expect(treeBytes(s.data)).toEqual(live);
  // The local copy is sound: a local drill passes.
  expect((await run('l2backup', ['drill'], s.env)).exitCode).toBe(0);
});

/**
 * A proxy in front of the S3 server that holds every GET of `marker` unanswered and tells the
 * test it did: the drill is then provably in the middle of its restore, with files on disk.
 */
async function holdingProxy(marker: string): Promise<{ url: string; held: Promise<void>; close: () => Promise<void> }> {
  const target = new URL(s3.endpoint);
  let onHeld!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.includes(marker)) {
      onHeld();
      return;
    }
    passThrough(req, res, target);
  });
  const { url, close } = await listenLocal(server);
  return { url, held, close };
}

test('a drill stopped by SIGTERM removes its folder, frees the lock and records "interrupted"; one killed outright is swept by the next run', async () => {
  const s = setup();
  writeFileSync(join(s.data, 'reports/zz-held.csv'), 'held\n');
  expect((await run('l2backup', ['nightly'], s.env)).exitCode).toBe(0);
  const live = treeBytes(s.data);
  const proxy = await holdingProxy('zz-held.csv');
  try {
    const env = { ...s.env, S3_ENDPOINT: proxy.url };
    const child = tracked(execa('node', [bin('l2backup'), 'drill', '--from', 'remote'], { env, extendEnv: false, reject: false, all: true }));
    await proxy.held;
    // Mid-restore: the scratch folder holds the files restored so far.
    const [scratch] = leftovers(s.root);
    expect(existsSync(join(drillDir(s.root), scratch!, 'models/model.bin'))).toBe(true);
    child.kill('SIGTERM');
    const res = await child;
    expect(res.exitCode).toBe(1);
    expect(String(res.all)).toMatch(/received SIGTERM: stopping cleanly/);
    expect(String(res.all)).toMatch(/ALERT l2backup: \[warning\] restore drill interrupted/);
    expect(leftovers(s.root)).toEqual([]);
    expect(existsSync(join(s.root, '.l2/locks/backup.lock'))).toBe(false);
    expect(lastDrill(s.root)).toMatchObject({ status: 'interrupted', from: 'remote', error: 'interrupted by SIGTERM' });

    // SIGKILL leaves the folder (and a dead owner's lock); the next nightly, or the next drill, removes it.
    const killDrill = async () => {
      const killed = tracked(execa('node', [bin('l2backup'), 'drill', '--from', 'remote'], { env, extendEnv: false, reject: false, all: true }));
      await waitFor('a drill to reach the held object', () => leftovers(s.root).length === 1 && existsSync(join(drillDir(s.root), leftovers(s.root)[0]!, 'models/model.bin')));
      killed.kill('SIGKILL');
      await killed;
      expect(leftovers(s.root)).toHaveLength(1);
      return leftovers(s.root)[0]!;
    };
    const first = await killDrill();
    const nightly = await run('l2backup', ['nightly'], s.env);
    expect(nightly.exitCode).toBe(0);
    expect(nightly.stderr).toContain(`removed the folder of a drill that did not finish: ${join(drillDir(s.root), first)}`);
    expect(leftovers(s.root)).toEqual([]);
    const second = await killDrill();
    const next = await run('l2backup', ['drill'], s.env);
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toContain(`removed the folder of an earlier drill that did not finish: ${join(drillDir(s.root), second)}`);
    expect(leftovers(s.root)).toEqual([]);
  } finally {
    await proxy.close();
  }
  expect(treeBytes(s.data)).toEqual(live);
});

test('bad --sample or --from: exit 2 with one line naming the option; nothing is restored', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  for (const args of [['--sample', '0'], ['--sample', '1.5'], ['--sample', '150%'], ['--sample', 'half'], ['--sample', ''], ['--sample', '-0.1'], ['--from', 'tape']]) {
    const res = await run('l2backup', ['drill', ...args], s.env);
    expect([args, res.exitCode]).toEqual([args, 2]);
    const lines = res.stderr.split('\n').filter(Boolean);
    expect([args, lines.length]).toEqual([args, 1]);
    expect(lines[0]).toContain(args[0]);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  }
  expect(existsSync(join(s.root, '.l2/backup/last-drill.json'))).toBe(false);
  expect(leftovers(s.root)).toEqual([]);
  // No remote configured: exit 2, one line saying so.
  const noRemote = await run('l2backup', ['drill', '--from', 'remote'], { ...s.env, BACKUP_BUCKET: '' });
  expect(noRemote.exitCode).toBe(2);
  expect(noRemote.stderr.trim().split('\n')).toEqual([expect.stringMatching(/BACKUP_BUCKET is not set/)]);
  // A drill folder inside a live source is refused before anything is written.
  const inside = await run('l2backup', ['drill'], { ...s.env, BACKUP_DRILL_DIR: join(s.data, 'models/drill') });
  expect(inside.exitCode).toBe(2);
  expect(inside.stderr).toMatch(/BACKUP_DRILL_DIR=.* overlaps source models/);
  expect(existsSync(join(s.data, 'models/drill'))).toBe(false);
});

test('the drill waits for nobody: while another run holds the backup lock it exits 75 and writes nothing', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const holder = await holdBackupLock(s.root);
  try {
    const res = await run('l2backup', ['drill'], s.env);
    expect(res.exitCode).toBe(75);
    expect(existsSync(join(s.root, '.l2/backup/last-drill.json'))).toBe(false);
    expect(leftovers(s.root)).toEqual([]);
  } finally {
    await holder.kill();
  }
});

test('not enough room in BACKUP_DRILL_DIR: exit 1 before restoring, alert, record, nothing left behind', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const small = join(s.dir, 'small');
  mkdirSync(small);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', small]);
  try {
    const res = await run('l2backup', ['drill'], { ...s.env, BACKUP_DRILL_DIR: join(small, 'drill') });
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(/not enough space for the drill in .*small\/drill.* free, the restore needs about .*; .*--sample/);
    expect(res.stderr).toMatch(/ALERT l2backup: \[error\] restore drill FAILED/);
    expect(lastDrill(s.root)).toMatchObject({ status: 'failed', files: 0 });
    expect(readdirSync(join(small, 'drill'))).toEqual([]);
  } finally {
    await execa('umount', [small]);
  }
});

test('as the non-root job user, a snapshot with read-only folders and files is drilled and removed completely', async () => {
  const user = await testUser();
  const s = setup();
  mkdirSync(join(s.data, 'configs/locked/inner'), { recursive: true });
  writeFileSync(join(s.data, 'configs/locked/inner/key.pem'), 'k\n');
  await execa('chmod', ['-R', 'a-w', join(s.data, 'configs/locked')]);
  await execa('chmod', ['755', s.dir]);
  await execa('chown', ['-R', `${user}:${user}`, s.dir]);
  const asUser = (args: string[]) =>
    execa('setpriv', ['--reuid', user, '--regid', user, '--init-groups', 'env', '-i', ...Object.entries(s.env).map(([k, v]) => `${k}=${v}`), 'node', bin('l2backup'), ...args], { reject: false, all: true });
  expect((await asUser(['snapshot'])).exitCode).toBe(0);
  const res = await asUser(['drill', '--json']);
  expect([res.exitCode, String(res.all)]).toEqual([0, expect.stringContaining('drill OK')]);
  expect(JSON.parse(String(res.stdout)).files).toBeGreaterThan(20);
  expect(leftovers(s.root)).toEqual([]);
});
