/**
 * healthchecks.io-style pings end to end: the BUILT programs against a real local HTTP receiver
 * (__tests__/helpers/receiver.ts) that records every request, or refuses, or never answers.
 */

import { run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { withReceiver, deadPort } from '../helpers/receiver.js';
import { withTargets } from '../helpers/targets.js';

const hc = withReceiver();
const t = withTargets();
// The UUID is the secret of a ping URL: it must never be printed.
const UUID = '5f0e4d8c-7b1a-4c2e-9d3f-0a1b2c3d4e5f';
beforeEach(() => {
  hc.requests.length = 0;
  hc.script.length = 0;
});

function setup(extra: Record<string, string> = {}) {
  const probe = sandbox();
  const { sources } = makeTree(probe.dir);
  return sandbox({ BACKUP_SOURCES: sources, BACKUP_PING_URL: `http://127.0.0.1:${hc.port}/ping/${UUID}`, ...extra });
}

const noSecret = (res: { stdout: string; stderr: string }) => {
  expect(res.stdout).not.toContain(UUID);
  expect(res.stderr).not.toContain(UUID);
};

test('a nightly pings /start, then the URL itself on success, with a summary as the body', async () => {
  const sb = setup();
  const res = await run('l2backup', ['nightly'], sb.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).not.toMatch(/ping/);
  expect(hc.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /ping/${UUID}/start`, `POST /ping/${UUID}`]);
  const body = hc.requests[1]!.raw;
  expect(body).toMatch(/^l2backup nightly: exit 0 \(ok\)\nsnapshot \d{8}-\d{6}: ok; \d+ files, .* new, /);
  expect(body).not.toContain(sb.root); // no paths, no secrets: ids and figures only
  noSecret(res);
});

test('a failed nightly pings /start then /<exit code> with what went wrong in the body', async () => {
  const sb = setup();
  // One source gone: a partial backup, exit 3.
  const res = await run('l2backup', ['nightly'], { ...sb.env, BACKUP_SOURCES: `${sb.env.BACKUP_SOURCES},gone=/nonexistent/l2ops-gone` });
  expect(res.exitCode).toBe(3);
  expect(hc.requests.map((r) => r.path)).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}/3`]);
  expect(hc.requests[1]!.raw).toMatch(/^l2backup nightly: exit 3 \(partial\)\nsnapshot \d{8}-\d{6}: partial;/);

  // Another run holds the backup lock: exit 75, and the watcher hears it.
  hc.requests.length = 0;
  const { holdBackupLock } = await import('../helpers/snap.js');
  const held = await holdBackupLock(sb.root);
  try {
    const locked = await run('l2backup', ['nightly'], sb.env);
    expect(locked.exitCode).toBe(75);
    expect(hc.requests.map((r) => r.path)).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}/75`]);
    expect(hc.requests[1]!.raw).toMatch(/^l2backup nightly: exit 75 \(another run holds the backup lock\)\nerror: /);
    noSecret(locked);
  } finally {
    await held.kill();
  }
});

test('a ping receiver that refuses connections: the backup still succeeds, with a warning per ping', async () => {
  const port = await deadPort();
  const sb = setup({ BACKUP_PING_URL: `http://127.0.0.1:${port}/ping/${UUID}` });
  const res = await run('l2backup', ['nightly'], sb.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/WARN {2}l2backup: backup ping \(BACKUP_PING_URL\) \/start failed: connection refused/);
  expect(res.stderr).toMatch(/WARN {2}l2backup: backup ping \(BACKUP_PING_URL\) failed: connection refused/);
  noSecret(res);
});

test('a ping receiver that accepts and never answers: the run ends after the ping timeouts, exit 0, warnings', async () => {
  hc.script.push({ status: 200, hang: true }, { status: 200, hang: true });
  const sb = setup({ BACKUP_PING_TIMEOUT_MS: '1500' });
  const res = await run('l2backup', ['nightly'], sb.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/backup ping \(BACKUP_PING_URL\) \/start failed: no answer within 1500 ms/);
  expect(res.stderr).toMatch(/backup ping \(BACKUP_PING_URL\) failed: no answer within 1500 ms/);
  expect(hc.requests.map((r) => r.path)).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}`]);
  noSecret(res);
});

test('snapshot (by hand) does not ping the nightly check', async () => {
  const sb = setup();
  expect((await run('l2backup', ['snapshot'], sb.env)).exitCode).toBe(0);
  expect(hc.requests).toEqual([]);
});

test('HEALTHCHECK_PING_FAIL=1: the health ping goes to /fail with the down targets while one is down; the plain URL when all are up', async () => {
  const env = (extra: Record<string, string>) =>
    sandbox({ HEALTHCHECK_PING_URL: `http://127.0.0.1:${hc.port}/ping/${UUID}`, HEALTH_FAILURE_THRESHOLD: '1', HEALTH_TIMEOUT_MS: '15000', HEALTH_LATENCY_WARN_MS: '4500', ...extra }).env;
  const down = env({ HEALTHCHECK_PING_FAIL: '1', HEALTH_ENDPOINTS: `algo=${t.base}/health,broken=${t.base}/error` });
  const res = await run('l2health', ['health-only'], down);
  expect(res.exitCode).toBe(1);
  expect(hc.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`POST /ping/${UUID}/fail`]);
  expect(hc.requests[0]!.raw).toBe('l2health: 1 target(s) down\nbroken (http): HTTP 500 (expected 2xx)\n');
  noSecret(res);

  // Without the switch: the plain URL as before, whatever the targets.
  hc.requests.length = 0;
  await run('l2health', ['health-only'], { ...down, HEALTHCHECK_PING_FAIL: '0' });
  expect(hc.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /ping/${UUID}`]);

  hc.requests.length = 0;
  const up = env({ HEALTHCHECK_PING_FAIL: '1', HEALTH_ENDPOINTS: `algo=${t.base}/health` });
  expect((await run('l2health', ['health-only'], up)).exitCode).toBe(0);
  expect(hc.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /ping/${UUID}`]);
});

test('a bad HEALTHCHECK_PING_FAIL or BACKUP_PING_URL is exit 2 naming the variable, the URL masked', async () => {
  const bad = await run('l2health', ['once'], sandbox({ HEALTHCHECK_PING_FAIL: 'maybe' }).env);
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr).toContain('HEALTHCHECK_PING_FAIL="maybe" (from env) is not valid');
  const url = await run('l2backup', ['nightly'], setup({ BACKUP_PING_URL: `ftp://hc.example/${UUID}` }).env);
  expect(url.exitCode).toBe(2);
  expect(url.stderr).toContain('BACKUP_PING_URL=');
  noSecret(url);
});


