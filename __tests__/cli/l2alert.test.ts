/** l2alert end to end: the built binary against a real signature-checking receiver on 127.0.0.1. */
import { readFileSync, writeFileSync, existsSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { startReceiver, deadPort, type Receiver } from '../helpers/receiver.js';
import { run, sandbox } from '../helpers/run.js';

const SECRET = 'test-hmac-secret-1234';
let receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});
async function receiver(secret = SECRET, port = 0) {
  const r = await startReceiver(secret, port);
  receivers.push(r);
  return r;
}

// Budgets and timeouts roomy enough for a busy machine; the tests about running out set their own.
function alertEnv(url: string, extra: Record<string, string> = {}) {
  return sandbox({ ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: SECRET, ALERT_MIN_INTERVAL_MS: '50', ALERT_TIMEOUT_MS: '5000', ALERT_BUDGET_MS: '20000', ...extra });
}

function bufferLines(root: string): string[] {
  const file = join(root, '.l2', 'alerts_buffer.jsonl');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

test('an alert is delivered, signed, and printed as an ALERT line', async () => {
  const r = await receiver();
  const sb = alertEnv(r.url);
  const res = await run('l2alert', ['send', '--level', 'error', '--title', 'algo DOWN', 'connection refused'], sb.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/ALERT .*\[error\] algo DOWN: connection refused/);
  expect(r.received).toHaveLength(1);
  expect(r.received[0]!.verified).toBe(true);
  expect(r.received[0]!.body.text).toContain('algo DOWN');
  expect(r.received[0]!.headers['x-l2-alert-id']).toMatch(/^[0-9a-f-]{36}$/);
  expect(bufferLines(sb.root)).toHaveLength(0);
});

test('receiver down then back: buffered, then flushed in order, each exactly once', async () => {
  const port = await deadPort();
  // Enough budget for at least one attempt on a busy machine (a refused connection is quick).
  const sb = alertEnv(`http://127.0.0.1:${port}/hook`, { ALERT_BUDGET_MS: '6000' });
  for (const n of [1, 2, 3]) {
    const res = await run('l2alert', ['send', '--level', 'warning', '--title', `t${n}`, '--key', `k${n}`, `message ${n}`], sb.env);
    expect(res.exitCode).toBe(1);
    expect(res.stdout).toMatch(/not delivered: connection refused; buffered/);
  }
  expect(bufferLines(sb.root)).toHaveLength(3);
  expect(statSync(join(sb.root, '.l2', 'alerts_buffer.jsonl')).mode & 0o777).toBe(0o600);
  const status = await run('l2alert', ['buffer-status', '--json'], sb.env);
  expect(JSON.parse(status.stdout)).toMatchObject({ count: 3, lastError: 'connection refused' });

  const r = await receiver(SECRET, port);
  // The flush gets a budget of its own: three messages must fit on a busy machine.
  const flush = await run('l2alert', ['flush'], { ...sb.env, ALERT_BUDGET_MS: '30000' });
  expect(flush.exitCode).toBe(0);
  expect(r.received.map((x) => x.body.text.split('\n')[0])).toEqual(['[WARNING] t1', '[WARNING] t2', '[WARNING] t3']);
  expect(new Set(r.received.map((x) => x.id)).size).toBe(3);
  expect(bufferLines(sb.root)).toHaveLength(0);
  await run('l2alert', ['flush'], sb.env);
  expect(r.received).toHaveLength(3);
});

test('500 then 200: retried and delivered once', async () => {
  const r = await receiver();
  r.script = [500, 503];
  const res = await run('l2alert', ['send', '--level', 'info', '--title', 'x', 'y'], alertEnv(r.url).env);
  expect(res.exitCode).toBe(0);
  expect(r.received).toHaveLength(1);
});

test('429 with Retry-After is honoured when it fits the budget', async () => {
  const r = await receiver();
  r.script = [{ status: 429, headers: { 'retry-after': '1' } }];
  const started = Date.now();
  const res = await run('l2alert', ['test'], alertEnv(r.url).env);
  expect(res.exitCode).toBe(0);
  expect(res.stdout).toMatch(/delivered: HTTP 200/);
  expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  expect(r.received).toHaveLength(1);
});

test('a receiver that never answers: the process ends within its budget and keeps the alert', async () => {
  const r = await receiver();
  r.fallback = 0;
  r.script = Array.from({ length: 20 }, () => ({ status: 200, hang: true }));
  // Ending at all is the property (the test's timeout bounds it); no wall-clock assertion.
  // The budget counts from process start, so it must leave room for a slow start on a busy
  // machine (seen: a 2 s budget used up before the first attempt beside a cp -a hog).
  const res = await run('l2alert', ['send', '--level', 'error', '--title', 'hang', 'm'], alertEnv(r.url, { ALERT_TIMEOUT_MS: '500', ALERT_BUDGET_MS: '8000' }).env);
  expect(res.exitCode).toBe(1);
  expect(res.stdout).toMatch(/timed out/);
});

test('16 concurrent senders while the receiver is down: 16 intact alerts kept (buffer lines, or spill files when the mutex was busy)', async () => {
  const port = await deadPort();
  const sb = alertEnv(`http://127.0.0.1:${port}/hook`, { ALERT_BUDGET_MS: '1000', ALERT_TIMEOUT_MS: '300' });
  const results = await Promise.all(Array.from({ length: 16 }, (_, i) => run('l2alert', ['send', '--level', 'warning', '--title', `c${i}`, '--key', `c${i}`, `concurrent ${i}`], sb.env)));
  for (const res of results) expect(res.exitCode).toBe(1);
  const spillDir = join(sb.root, '.l2', 'alerts_buffer.jsonl.spill');
  const spilled = existsSync(spillDir) ? readdirSync(spillDir).map((n) => readFileSync(join(spillDir, n), 'utf8').trim()) : [];
  const lines = [...bufferLines(sb.root), ...spilled];
  expect(lines).toHaveLength(16);
  const titles = lines.map((l) => JSON.parse(l).title).sort();
  expect(new Set(titles).size).toBe(16);
});

test('a corrupt buffer line is moved aside and the rest is delivered', async () => {
  const r = await receiver();
  const sb = alertEnv(r.url);
  const good = { id: '11111111-1111-1111-1111-111111111111', level: 'error', title: 'kept', message: 'm', source: 's', key: 'k', host: 'h', time: new Date().toISOString() };
  const file = join(sb.root, '.l2', 'alerts_buffer.jsonl');
  await execa('mkdir', ['-p', join(sb.root, '.l2')]);
  writeFileSync(file, `{"id": "torn", "lev\n${JSON.stringify(good)}\n`, { mode: 0o600 });
  const res = await run('l2alert', ['flush'], sb.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/1 corrupt line\(s\) moved to .*alerts_buffer\.jsonl\.corrupt/);
  expect(r.received.map((x) => x.id)).toEqual([good.id]);
  expect(readFileSync(`${file}.corrupt`, 'utf8')).toContain('"torn"');
});

test('a wrong secret on the receiver side is rejected and the alert is kept (in the dead letters)', async () => {
  const r = await receiver('another-secret');
  const sb = alertEnv(r.url);
  const res = await run('l2alert', ['test'], sb.env);
  expect(res.exitCode).toBe(1);
  expect(res.stdout).toMatch(/HTTP 401 .*misconfigured/);
  expect(r.rejected).toBe(1);
  expect(bufferLines(sb.root)).toHaveLength(0);
  expect(readFileSync(join(sb.root, '.l2', 'alerts_buffer.jsonl.dead'), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
});

test('after an outage, alerts with one key are sent as one digest', async () => {
  const port = await deadPort();
  const sb = alertEnv(`http://127.0.0.1:${port}/hook`, { ALERT_BUDGET_MS: '800', ALERT_TIMEOUT_MS: '200' });
  for (let i = 0; i < 5; i++) await run('l2alert', ['send', '--level', 'error', '--title', 'algo DOWN', '--key', 'algo', `try ${i}`], sb.env);
  const r = await receiver(SECRET, port);
  // A 200 ms attempt timeout on a busy machine can time out a request the receiver did get,
  // and the retry is then a second copy (same message id, for the receiver to drop): the flush
  // gets an ordinary timeout so the test checks grouping, not the machine's speed.
  const res = await run('l2alert', ['flush'], { ...sb.env, ALERT_BUDGET_MS: '20000', ALERT_TIMEOUT_MS: '5000' });
  expect(res.exitCode).toBe(0);
  expect(r.received).toHaveLength(1);
  expect(r.received[0]!.body.text).toMatch(/^\[ERROR\] 5 × algo DOWN, \d\d:\d\d–\d\d:\d\d UTC/);
});

test('past ALERT_BUFFER_MAX the oldest are dropped, counted, and reported in the next message', async () => {
  const port = await deadPort();
  const sb = alertEnv(`http://127.0.0.1:${port}/hook`, { ALERT_BUFFER_MAX: '3', ALERT_BUDGET_MS: '500', ALERT_TIMEOUT_MS: '200' });
  for (let i = 0; i < 5; i++) await run('l2alert', ['send', '--level', 'info', '--title', `n${i}`, '--key', `n${i}`, 'm'], sb.env);
  expect(bufferLines(sb.root).map((l) => JSON.parse(l).title)).toEqual(['n2', 'n3', 'n4']);
  const status = JSON.parse((await run('l2alert', ['buffer-status', '--json'], sb.env)).stdout);
  expect(status).toMatchObject({ count: 3, droppedTotal: 2, droppedUnreported: 2 });
  const r = await receiver(SECRET, port);
  await run('l2alert', ['flush'], { ...sb.env, ALERT_BUDGET_MS: '20000' });
  expect(r.received[0]!.body.text).toContain('2 older alert(s) were dropped');
  expect(r.received).toHaveLength(3);
});

test('the signature matches an independent HMAC (openssl)', async () => {
  const r = await receiver();
  await run('l2alert', ['test'], alertEnv(r.url).env);
  const got = r.received[0]!;
  const ts = String(got.headers['x-l2-timestamp']);
  const res = await execa('openssl', ['dgst', '-sha256', '-hmac', SECRET], { input: `${ts}.${got.raw}` });
  expect(String(got.headers['x-l2-signature'])).toBe(`sha256=${res.stdout.trim().split(/\s+/).pop()}`);
});

test('without ALERT_WEBHOOK_URL: alerts are log lines, test exits 2', async () => {
  const sb = sandbox();
  const send = await run('l2alert', ['send', '--level', 'critical', '--title', 'disk', 'full'], sb.env);
  expect(send.exitCode).toBe(0);
  expect(send.stderr).toMatch(/ALERT .*\[critical\] disk: full/);
  const t = await run('l2alert', ['test'], sb.env);
  expect(t.exitCode).toBe(2);
  expect(t.stderr).toMatch(/ALERT_WEBHOOK_URL is not set/);
});

test('secrets never appear in output, state files or payloads', async () => {
  const r = await receiver();
  const url = `${r.url}?token=sekrit-token-value`;
  const sb = alertEnv(url);
  const outputs = [await run('l2alert', ['test'], sb.env), await run('l2alert', ['config'], sb.env), await run('l2alert', ['config', '--json'], sb.env), await run('l2alert', ['buffer-status', '--json'], sb.env)];
  const text = outputs.map((o) => o.all).join('\n') + r.received.map((x) => x.raw).join('\n');
  expect(text).not.toContain(SECRET);
  expect(text).not.toContain('sekrit-token-value');
  expect(outputs[1]!.stdout).toMatch(/ALERT_WEBHOOK_URL\s+http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*\s+env/);
});

describe('bad configuration: exit 2 and one line naming the variable', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['not a URL', { ALERT_WEBHOOK_URL: 'not a url' }, /^.*ALERT_WEBHOOK_URL="\*\*\*\*" \(from env\) is not valid: expected an http/],
    ['ftp URL', { ALERT_WEBHOOK_URL: 'ftp://x/y' }, /ALERT_WEBHOOK_URL=.* is not valid/],
    ['buffer max', { ALERT_BUFFER_MAX: '0' }, /ALERT_BUFFER_MAX="0" \(from env\) is not valid: expected a whole number from 1 to 1000000/],
    ['timeout', { ALERT_TIMEOUT_MS: 'soon' }, /ALERT_TIMEOUT_MS="soon"/],
    ['timeout over budget', { ALERT_TIMEOUT_MS: '20000', ALERT_BUDGET_MS: '1000' }, /ALERT_TIMEOUT_MS .* is larger than ALERT_BUDGET_MS/],
    ['relative root', { BACKUP_ROOT: 'backups' }, /BACKUP_ROOT="backups" .* expected an absolute path/],
    ['missing env file', { L2_ENV_FILE: '/nonexistent/l2.env' }, /L2_ENV_FILE="\/nonexistent\/l2.env" \(from env\): no such file/],
  ];
  test.each(cases)('%s', async (_name, env, pattern) => {
    const sb = sandbox();
    const res = await run('l2alert', ['buffer-status'], { ...sb.env, ...env });
    expect(res.exitCode).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(res.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  test('a value from the env file names the file', async () => {
    const sb = sandbox({}, 'ALERT_BUFFER_MAX=lots\n');
    const res = await run('l2alert', ['buffer-status'], sb.env);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`ALERT_BUFFER_MAX="lots" (from ${sb.envFile}) is not valid`);
  });

  test('an env file with a syntax error names the line', async () => {
    const sb = sandbox({}, 'OK=1\nthis is not a setting\n');
    const res = await run('l2alert', ['buffer-status'], sb.env);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`env file ${sb.envFile} line 2: expected KEY=VALUE`);
  });

  test('unknown command and flag: exit 2', async () => {
    const sb = sandbox();
    const a = await run('l2alert', ['bogus'], sb.env);
    expect(a.exitCode).toBe(2);
    expect(a.stderr.trim()).toMatch(/^l2alert: unknown command 'bogus'/);
    const b = await run('l2alert', ['send', '--level', 'loud', '--title', 't', 'm'], sb.env);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/loud/);
  });
});
