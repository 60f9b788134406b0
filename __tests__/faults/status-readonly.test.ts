/**
 * `l2backup status` and `list` hold no lock, so they only read state (issue 9): a corrupt run
 * or remote record is reported and counted as pending, never set aside or rebuilt by them, since
 * such a repair racing a nightly could overwrite or move away the record the nightly has just
 * written. Real S3 dev server, built binary.
 */
import { readFileSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';
import { deadPort } from '../helpers/receiver.js';
import { tracked } from '../helpers/cleanup.js';

const s3 = withS3Server();

function setup() {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  const prefix = `r${Math.random().toString(36).slice(2, 8)}`;
  Object.assign(sb.env, s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}` }), { BACKUP_SOURCES: sources });
  return { ...sb, data, state: join(sb.root, '.l2/backup') };
}

const recordPath = (state: string, id: string) => join(state, 'remote', `${id}.json`);
/** Every file under the backup state folder, with its bytes: what a read-only command must leave exactly as it was. */
function stateFiles(state: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(state, { recursive: true, encoding: 'utf8' })) {
    const p = join(state, name);
    if (statSync(p).isFile()) files[name] = readFileSync(p, 'base64');
  }
  return files;
}

/** A snapshot whose upload failed (S3 refused the connection): its remote record says pending. Then that record is torn. */
async function tornPendingRecord(s: ReturnType<typeof setup>): Promise<string> {
  const offline = await run('l2backup', ['nightly'], { ...s.env, S3_ENDPOINT: `http://127.0.0.1:${await deadPort()}` });
  expect(offline.exitCode).toBe(1);
  const [id] = snapshots(s.root);
  expect(JSON.parse(readFileSync(recordPath(s.state, id!), 'utf8')).state).toBe('pending');
  writeFileSync(recordPath(s.state, id!), '{"id":"'); // a torn write
  return id!;
}

test('status and list report a corrupt remote or run record as pending/corrupt and write nothing', async () => {
  const s = setup();
  const id = await tornPendingRecord(s);
  writeFileSync(join(s.state, 'last-run.json'), '[not json');
  const before = stateFiles(s.state);
  const status = await run('l2backup', ['status', '--json'], s.env);
  expect(status.exitCode).toBe(0);
  expect(JSON.parse(status.stdout).remote.pending).toEqual([id]);
  expect(status.stderr).toContain(`${id}.json is corrupt; left as it is`);
  expect(status.stderr).toContain('last-run.json is corrupt; left as it is');
  const list = await run('l2backup', ['list', '--json'], s.env);
  expect(list.exitCode).toBe(0);
  expect(stateFiles(s.state)).toEqual(before);
  // The next backup run, which holds the lock, repairs it: the torn record is set aside, the snapshot goes up.
  const nightly = await run('l2backup', ['nightly'], s.env);
  expect(nightly.exitCode).toBe(0);
  expect(JSON.parse(readFileSync(recordPath(s.state, id), 'utf8')).state).toBe('uploaded');
}, 280_000);

test('status runs over and over beside a nightly that repairs and uploads: no record of the nightly is lost', async () => {
  const s = setup();
  const old = await tornPendingRecord(s);
  writeFileSync(join(s.state, 'last-run.json'), '[not json');
  const nightly = tracked(execa('node', [bin('l2backup'), 'nightly'], { env: s.env, extendEnv: false, reject: false, all: true }));
  let ended = false;
  void nightly.finally(() => (ended = true));
  let statusRuns = 0;
  // Two status loops at once, until the nightly has ended (its exit is the event waited on).
  const loop = async () => {
    while (!ended) {
      const st = await run('l2backup', ['status', '--json'], s.env);
      expect(st.exitCode).toBe(0);
      statusRuns++;
    }
  };
  await Promise.all([loop(), loop()]);
  const res = await nightly;
  expect(res.exitCode).toBe(0);
  expect(statusRuns).toBeGreaterThan(0);
  const [, id] = snapshots(s.root);
  for (const snap of [old, id!]) expect(JSON.parse(readFileSync(recordPath(s.state, snap), 'utf8')).state).toBe('uploaded');
  const lastRun = JSON.parse(readFileSync(join(s.state, 'last-run.json'), 'utf8'));
  expect(lastRun).toMatchObject({ status: 'ok', id });
  const after = JSON.parse((await run('l2backup', ['status', '--json'], s.env)).stdout);
  expect(after.remote.pending).toEqual([]);
}, 280_000);
