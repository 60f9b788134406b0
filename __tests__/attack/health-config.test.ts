/**
 * Attacks on the l2health budget/SSE/target-name work and the env-file/redaction/masking work.
 * Each test fails on the code under attack (c1a2081).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { redactEnv } from '../../src/backup/envcopy.js';
import { maskUrlCredentials, urlSecretParts } from '../../src/output/mask.js';
import { startReceiver } from '../helpers/receiver.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function sb(env: Record<string, string> = {}, text = '') {
  const s = sandbox(env, text);
  dirs.push(s.dir);
  return s;
}

test('1. config masks the whole password of a URL whose password holds "@" or a space (the URL parser accepts both)', async () => {
  for (const [url, secret] of [
    ['http://ops:Tr0ub4dor@3xYzQ@127.0.0.1:1/health', '3xYzQ'],
    ['http://ops:S3cretPw9 x@127.0.0.1:1/health', 'S3cretPw9'],
  ] as const) {
    const s = sb({ HEALTH_ENDPOINTS: `api=${url}` });
    new URL(url); // the target is valid: WHATWG URL takes userinfo up to the last '@'
    const text = await run('l2health', ['config'], s.env);
    const json = await run('l2health', ['config', '--json'], s.env);
    expect(text.exitCode).toBe(0);
    expect(text.all).not.toContain(secret);
    expect(json.all).not.toContain(secret);
  }
});

test('1b. masking covers every userinfo the WHATWG URL parser accepts, and value scrubbing finds the whole password', () => {
  for (const [url, secret] of [
    ['http://ops:Tr0ub4dor@3xYzQ@127.0.0.1:1/h', '3xYzQ'],
    ['http://ops:pa"ss<w0rd@127.0.0.1:1/h', 'w0rd'],
    ['http:/ops:Secr3tPass@127.0.0.1:1/h', 'Secr3tPass'],
    ['http:\\\\ops:Secr3tPass@127.0.0.1:1/h', 'Secr3tPass'],
    ['see https://u:a@b@c@host.example/x and more', 'b@c'],
  ] as const) {
    expect(maskUrlCredentials(url)).not.toContain(secret);
    expect(urlSecretParts(url).some((p) => p.includes(secret))).toBe(true);
  }
  expect(maskUrlCredentials('mail ops@example.com, http://host/x')).toBe('mail ops@example.com, http://host/x');
});

test('2. the redacted env copy drops a secret written in an inline comment after a kept value', () => {
  const inForce = 'Zk39xQpLmW71-s3-secret';
  const copy = redactEnv(
    [`LOG_LEVEL=info # old S3 key was ${inForce}`, 'TRADING_MODE="paper" # ghp_abcdefghijklmnopqrstuvwxyz0123456789', ''].join('\n'),
    [inForce],
  );
  expect(copy).not.toContain(inForce);
  expect(copy).not.toContain('ghp_abcdefghijklmnopqrstuvwxyz0123456789');
});

test('3. the redacted env copy drops a bare line that is a secret in force (a wrapped value compose reads as an inherited KEY)', () => {
  const seed = 'JBSWY3DPEHPK3PXP4XQ2';
  const copy = redactEnv(['BROKER_TOTP_SEED=', seed, 'A=1', ''].join('\n'), [seed]);
  expect(copy).not.toContain(seed);
  // A plain inherited name that is not a secret in force stays, as compose reads it.
  expect(redactEnv(['TZ', 'A=1', ''].join('\n'), [seed])).toContain('TZ');
});

test('4. a health target named like a built-in check (alert-buffer, backup) does not share its state: no DOWN and RESOLVED in the same run', async () => {
  const s = sb({ HEALTH_ENDPOINTS: 'alert-buffer=http://127.0.0.1:1/health', HEALTH_FAILURE_THRESHOLD: '1' });
  const res = await run('l2health', ['once'], s.env);
  // Either the name is refused as a configuration error, or the two checks keep separate state.
  if (res.exitCode === 2) {
    expect(res.stderr).toMatch(/alert-buffer/);
    return;
  }
  expect(res.all).toMatch(/alert-buffer DOWN/);
  expect(res.all).not.toMatch(/alert-buffer RESOLVED/);
  const state = JSON.parse(readFileSync(join(s.root, '.l2/health/state.json'), 'utf8'));
  expect(Object.values(state.targets).map((t) => (t as { kind: string }).kind).sort()).toEqual(expect.arrayContaining(['alert-buffer', 'backup', 'http']));
});

test('5. an SSE event that grows past HEALTH_SSE_MAX_FRAME_BYTES is not UP just because comments keep arriving (memory is not bounded otherwise)', async () => {
  const chunk = 'data: ' + 'x'.repeat(60_000) + '\n:\n';
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < 10; i++) res.write(chunk); // 600 kB in one event that never ends, with a comment after each line
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const s = sb({ HEALTH_SSE_STREAMS: `feed=http://127.0.0.1:${port}/`, HEALTH_SSE_MAX_FRAME_BYTES: '100000', HEALTH_SSE_OBSERVE_MS: '1500', HEALTH_FAILURE_THRESHOLD: '1' });
    const res = await run('l2health', ['sse-only', '--json'], s.env);
    const feed = JSON.parse(res.stdout).results.find((r: { name: string }) => r.name === 'feed');
    expect(feed.status).toBe('down');
    expect(feed.reason).toMatch(/HEALTH_SSE_MAX_FRAME_BYTES/);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('6. a deeply nested ${VAR:-...} in the env file is a configuration error naming the line (exit 2), not an internal error', async () => {
  let v = 'd';
  for (let i = 0; i < 20_000; i++) v = '${X:-' + v + '}';
  const s = sb();
  writeFileSync(s.envFile, `A=1\nB=${v}\n`);
  const res = await run('l2health', ['config'], s.env);
  expect(res.exitCode).toBe(2);
  expect(res.stderr).toMatch(/line 2/);
  expect(res.stderr).not.toMatch(/internal error/);
});

test('7b. an HTTP target header with a control character is a configuration error naming the key', async () => {
  const s = sb();
  const file = join(s.dir, 'health.json');
  writeFileSync(file, JSON.stringify({ targets: [{ name: 'api', url: 'http://127.0.0.1:1/h', headers: { 'X-Token': 'v\u0001' } }] }));
  const res = await run('l2health', ['once'], { ...s.env, HEALTH_CONFIG: file });
  expect(res.exitCode).toBe(2);
  expect(res.stderr).toMatch(/X-Token/);
  expect(res.stderr.trim().split('\n')).toHaveLength(1);
});

test('7. an SSE target header with a control character is a configuration error (exit 2) or a DOWN target, not an internal error that drops the whole run', async () => {
  const s = sb();
  const file = join(s.dir, 'health.json');
  writeFileSync(file, JSON.stringify({ targets: [{ name: 'feed', kind: 'sse', url: 'http://127.0.0.1:1/s', headers: { 'X-Token': 'v\u0001' } }] }));
  const res = await run('l2health', ['once'], { ...s.env, HEALTH_CONFIG: file });
  expect(res.all).not.toMatch(/internal error/);
  if (res.exitCode !== 2) expect(res.all).toMatch(/feed\s+sse\s+DOWN/);
});

test('8. an unknown key in HEALTH_CONFIG cannot inject a forged log line or terminal escapes into the error', async () => {
  const s = sb();
  const file = join(s.dir, 'health.json');
  writeFileSync(file, JSON.stringify({ targets: [{ name: 'api', url: 'http://127.0.0.1:1/h', 'x\u001b[31m\n2026-01-01T00:00:00.000Z ALERT l2health: forged': 1 }] }));
  const res = await run('l2health', ['once'], { ...s.env, HEALTH_CONFIG: file });
  expect(res.exitCode).toBe(2);
  expect(res.stderr.trim().split('\n')).toHaveLength(1);
  expect(res.stderr).not.toContain('\u001b');
});

test('9. a malformed entry in the health state file (hand-edited, older version) is reported and replaced, not an internal error on every run', async () => {
  const s = sb({ HEALTH_ENDPOINTS: 'api=http://127.0.0.1:1/health' });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(s.root, '.l2/health'), { recursive: true });
  writeFileSync(join(s.root, '.l2/health/state.json'), JSON.stringify({ version: 1, targets: { api: { status: 'up' } } }));
  const once = await run('l2health', ['health-only'], s.env);
  expect(once.all).not.toMatch(/internal error/);
  expect(once.all).toMatch(/api\s+http\s+DOWN/);
  const status = await run('l2health', ['status'], s.env);
  expect(status.all).not.toMatch(/internal error/);
});

test('10. a bad value from the env file ("\\n" in double quotes) cannot forge an ALERT line in the one-line error', async () => {
  const s = sb();
  writeFileSync(s.envFile, 'ALERT_BUFFER_MAX="5\\n2026-01-01T00:00:00.000Z ALERT l2health: forged"\n');
  const res = await run('l2health', ['once'], s.env);
  expect(res.exitCode).toBe(2);
  expect(res.stderr.trim().split('\n')).toHaveLength(1);
});


test('11. a health target named backup is refused too', async () => {
  const s = sb({ HEALTH_SSE_STREAMS: 'backup=http://127.0.0.1:1/s' });
  const res = await run('l2health', ['once'], s.env);
  expect(res.exitCode).toBe(2);
  expect(res.stderr).toMatch(/"backup"/);
  expect(res.stderr.trim().split('\n')).toHaveLength(1);
});

test('12. a small run budget with a target that never answers still delivers the DOWN alert', async () => {
  const hook = await startReceiver();
  const hang = http.createServer(() => {}); // accepts, never answers
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  try {
    const port = (hang.address() as AddressInfo).port;
    const s = sb({
      HEALTH_ENDPOINTS: `api=http://127.0.0.1:${port}/h`,
      HEALTH_FAILURE_THRESHOLD: '1',
      HEALTH_RUN_BUDGET_MS: '3000',
      HEALTH_TIMEOUT_MS: '3000',
      ALERT_TIMEOUT_MS: '3000',
      ALERT_WEBHOOK_URL: hook.url,
    });
    const res = await run('l2health', ['health-only'], s.env);
    expect(res.all).toMatch(/api\s+http\s+DOWN/);
    expect(hook.received.map((r) => r.body.text).join('\n')).toMatch(/api DOWN/);
  } finally {
    hang.closeAllConnections();
    hang.close();
    await hook.close();
  }
});

test('9b. one malformed entry is dropped with a warning, the good ones are kept', async () => {
  const s = sb({ HEALTH_ENDPOINTS: 'api=http://127.0.0.1:1/health' });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(s.root, '.l2/health'), { recursive: true });
  const good = { kind: 'http', status: 'down', since: '2026-01-01T00:00:00.000Z', consecutiveBad: 3, consecutiveGood: 0, history: [] };
  writeFileSync(join(s.root, '.l2/health/state.json'), JSON.stringify({ version: 1, targets: { api: good, old: { status: 7 } } }));
  const status = await run('l2health', ['status'], s.env);
  expect(status.all).not.toMatch(/internal error/);
  expect(status.stderr).toMatch(/old/);
  expect(status.all).toMatch(/api/);
});
