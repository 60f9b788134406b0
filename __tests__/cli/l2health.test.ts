/** l2health end to end: the built binary against real HTTP and SSE servers on 127.0.0.1. */
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { withTargets, GAP_MS } from '../helpers/targets.js';
import { withReceiver, deadPort } from '../helpers/receiver.js';

const t = withTargets();
const hook = withReceiver();
beforeEach(() => {
  hook.received.length = 0;
});

function env(extra: Record<string, string>) {
  // Thresholds far from both a healthy answer on a busy machine and the slow targets (SLOW_MS, GAP_MS).
  return sandbox({ HEALTH_TIMEOUT_MS: '15000', HEALTH_LATENCY_WARN_MS: '4500', HEALTH_SSE_FIRST_EVENT_TIMEOUT_MS: '8000', ALERT_WEBHOOK_URL: hook.url, ALERT_MIN_INTERVAL_MS: '0', ...extra });
}

interface Row {
  name: string;
  status: string;
  reason: string;
  latencyMs?: number;
  sse?: { frames: number; longestGapMs?: number; timeToFirstFrameMs?: number };
}

async function once(sb: ReturnType<typeof sandbox>, mode = 'once') {
  const res = await run('l2health', [mode, '--json'], sb.env);
  const rows: Row[] = res.stdout ? JSON.parse(res.stdout).results : [];
  return { res, rows, by: (name: string) => rows.find((r) => r.name === name)! };
}

test('HTTP checks: healthy, 500, slow, hanging after accept, refused, unknown host, header auth', async () => {
  const refused = await deadPort();
  const cfgFile = join(sandbox().dir, 'health.json');
  writeFileSync(cfgFile, JSON.stringify({ targets: [{ name: 'authed', url: `${t.base}/auth`, headers: { authorization: 'Bearer s3cret-token-xyz' } }] }));
  const sb = env({
    HEALTH_ENDPOINTS: `algo=${t.base}/health,broken=${t.base}/error,slow=${t.base}/slow,hang=http://127.0.0.1:${t.hangPort}/health,refused=http://127.0.0.1:${refused}/health,nohost=http://no-such-host.invalid/health`,
    HEALTH_CONFIG: cfgFile,
  });
  const { res, by } = await once(sb, 'health-only');
  expect(res.exitCode).toBe(1);
  expect(by('algo')).toMatchObject({ status: 'up', reason: 'HTTP 200' });
  expect(by('authed')).toMatchObject({ status: 'up' });
  expect(by('broken')).toMatchObject({ status: 'down', reason: 'HTTP 500 (expected 2xx)' });
  expect(by('slow').status).toBe('degraded');
  expect(by('slow').reason).toMatch(/^slow: \d+ ms \(threshold 4500 ms\)$/);
  expect(by('hang')).toMatchObject({ status: 'down', reason: 'no answer within 15000 ms' });
  expect(by('refused')).toMatchObject({ status: 'down', reason: 'connection refused' });
  expect(by('nohost').status).toBe('down');
  expect(by('nohost').reason).toMatch(/DNS/);
  expect(res.all).not.toContain('s3cret-token-xyz');
});

test('SSE checks: events, comment heartbeats, silence, wrong type, one-and-close, CRLF', async () => {
  const sb = env({
    HEALTH_SSE_STREAMS: ['events', 'heartbeat', 'silent', 'wrong-type', 'one-and-close', 'crlf'].map((n) => `${n}=${t.base}/sse/${n}`).join(','),
  });
  const { res, by } = await once(sb, 'sse-only');
  expect(res.exitCode).toBe(1);
  expect(by('events').status).toBe('up');
  expect(by('heartbeat').status).toBe('up');
  expect(by('heartbeat').sse!.frames).toBe(1);
  expect(by('silent')).toMatchObject({ status: 'down' });
  expect(by('silent').reason).toMatch(/no event or comment within 8000 ms \(headers after \d+ ms\)/);
  expect(by('wrong-type')).toMatchObject({ status: 'down', reason: 'content type "text/html", expected text/event-stream' });
  expect(by('one-and-close').status).toBe('up');
  expect(by('crlf').status).toBe('up');
});

test('SSE observation window: gaps measured, a stream that closes during it is down', async () => {
  const cfgFile = join(sandbox().dir, 'health.json');
  writeFileSync(
    cfgFile,
    JSON.stringify({
      targets: [
        { name: 'steady', kind: 'sse', url: `${t.base}/sse/events`, observeMs: 3000, maxGapMs: 4500 },
        { name: 'gappy', kind: 'sse', url: `${t.base}/sse/gappy`, observeMs: GAP_MS + 3000, maxGapMs: 4500 },
        { name: 'closing', kind: 'sse', url: `${t.base}/sse/one-and-close`, observeMs: 500 },
      ],
    }),
  );
  const { by } = await once(env({ HEALTH_CONFIG: cfgFile }), 'sse-only');
  expect(by('steady').status).toBe('up');
  expect(by('steady').sse!.frames).toBeGreaterThan(3);
  expect(by('gappy').status).toBe('degraded');
  // The gap is measured on arrival, so a busy machine can shorten it by a late earlier frame:
  // the property is that it is measured and passes maxGapMs (that makes the target degraded).
  expect(by('gappy').sse!.longestGapMs).toBeGreaterThan(4500);
  expect(by('closing')).toMatchObject({ status: 'down', reason: 'the stream closed during observation after 1 frame(s)' });
});

test('transitions across runs: DOWN after the threshold, one alert, RESOLVED with the duration; status without probing', async () => {
  const sb = env({ HEALTH_ENDPOINTS: `algo=${t.base}/flaky`, HEALTH_FAILURE_THRESHOLD: '2' });
  t.flakyStatus = 500;
  const first = await once(sb, 'health-only');
  expect(first.res.exitCode).toBe(1);
  expect(hook.received).toHaveLength(0);
  await once(sb, 'health-only');
  expect(hook.received.map((r) => r.body.text.split('\n')[0])).toEqual(['[ERROR] algo DOWN']);
  await once(sb, 'health-only');
  expect(hook.received).toHaveLength(1);
  t.flakyStatus = 200;
  const back = await once(sb, 'health-only');
  expect(back.res.exitCode).toBe(0);
  expect(hook.received).toHaveLength(2);
  expect(hook.received[1]!.body.text).toMatch(/^\[INFO\] algo RESOLVED\nalgo \(http\) is up again after .* down/);
  const status = JSON.parse((await run('l2health', ['status', '--json'], sb.env)).stdout);
  const algo = status.targets.find((x: { name: string }) => x.name === 'algo');
  expect(algo).toMatchObject({ status: 'up', openAlert: null, lastAlert: { kind: 'resolved' } });
  expect(algo.uptime24h).toBeCloseTo(1 / 4);
});

test('an alert left open by a lost state file is resolved on the next good check', async () => {
  const sb = env({ HEALTH_ENDPOINTS: `ml=${t.base}/flaky`, HEALTH_FAILURE_THRESHOLD: '1' });
  t.flakyStatus = 503;
  await once(sb, 'health-only');
  expect(hook.received).toHaveLength(1);
  rmSync(join(sb.root, '.l2/health/state.json'));
  t.flakyStatus = 200;
  await once(sb, 'health-only');
  expect(hook.received.map((r) => r.body.text.split('\n')[0])).toEqual(['[ERROR] ml DOWN', '[INFO] ml RESOLVED']);
});

test('a corrupt state file is set aside and reported, and the run goes on', async () => {
  const sb = env({ HEALTH_ENDPOINTS: `algo=${t.base}/health` });
  mkdirSync(join(sb.root, '.l2/health'), { recursive: true });
  writeFileSync(join(sb.root, '.l2/health/state.json'), '{"version": 1, "targ');
  const { res } = await once(sb, 'health-only');
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/state file .*state\.json was corrupt; moved aside to .*state\.json\.corrupt-/);
  expect(JSON.parse(readFileSync(join(sb.root, '.l2/health/state.json'), 'utf8')).targets.algo.status).toBe('up');
});

test('once also watches the backups: no backup is DOWN, a fresh one is UP; the ping is sent', async () => {
  const sb = env({ HEALTH_ENDPOINTS: `algo=${t.base}/health`, HEALTHCHECK_PING_URL: `${t.base}/ping` });
  const before = t.pings;
  const first = await once(sb);
  expect(first.res.exitCode).toBe(1);
  expect(first.by('backup')).toMatchObject({ status: 'down', reason: expect.stringMatching(/no successful backup recorded/) });
  expect(first.by('alert-buffer').status).toBe('up');
  mkdirSync(join(sb.root, '.l2/backup'), { recursive: true });
  writeFileSync(join(sb.root, '.l2/backup/last-success.json'), JSON.stringify({ id: '20251003-020000', finishedAt: new Date().toISOString(), status: 'ok' }));
  const second = await once(sb);
  expect(second.res.exitCode).toBe(0);
  expect(second.by('backup').status).toBe('up');
  expect(t.pings - before).toBe(2);
  writeFileSync(join(sb.root, '.l2/backup/last-success.json'), JSON.stringify({ id: '20251001-020000', finishedAt: new Date(Date.now() - 30 * 3_600_000).toISOString(), status: 'ok' }));
  const third = await once(sb);
  expect(third.by('backup').reason).toMatch(/is 30 h 0 min old \(max 26 h\)/);
});

test('an overlapping run exits 75; sse-only without streams exits 2; bad target config exits 2 naming the target', async () => {
  const sb = env({ HEALTH_ENDPOINTS: `algo=${t.base}/health` });
  mkdirSync(join(sb.root, '.l2/locks'), { recursive: true });
  const holder = execa('sleep', ['30']);
  writeFileSync(join(sb.root, '.l2/locks/health.lock'), JSON.stringify({ pid: holder.pid, host: hostname(), startedAt: new Date().toISOString(), command: 'l2health once', token: 't' }));
  const busy = await run('l2health', ['once'], sb.env);
  holder.kill();
  await holder.catch(() => {});
  expect(busy.exitCode).toBe(75);
  expect(busy.stderr).toMatch(/another run holds the lock/);

  const none = await run('l2health', ['sse-only'], sandbox().env);
  expect(none.exitCode).toBe(2);
  expect(none.stderr).toMatch(/no targets configured for sse-only: set HEALTH_SSE_STREAMS/);

  const cases: [Record<string, string>, RegExp][] = [
    [{ HEALTH_ENDPOINTS: 'algo=http://a/h,algo=http://b/h' }, /HEALTH_ENDPOINTS=.* expected unique names \("algo" appears twice\)/],
    [{ HEALTH_ENDPOINTS: 'algo=not-a-url' }, /HEALTH_ENDPOINTS=.* expected an http\(s\) URL for "algo"/],
    [{ HEALTH_SSE_STREAMS: 'l2' }, /HEALTH_SSE_STREAMS="l2" .* name=url pairs/],
    [{ HEALTH_ENDPOINTS: 'a=http://x/h', HEALTH_SSE_STREAMS: 'a=http://x/s' }, /health target "a" is defined twice/],
    [{ HEALTH_FAILURE_THRESHOLD: '0' }, /HEALTH_FAILURE_THRESHOLD="0"/],
    [{ HEALTH_TIMEOUT_MS: '60000', HEALTH_RUN_BUDGET_MS: '30000' }, /HEALTH_TIMEOUT_MS .* is larger than HEALTH_RUN_BUDGET_MS/],
    [{ HEALTH_CONFIG: '/nonexistent.json' }, /HEALTH_CONFIG="\/nonexistent.json": no such file/],
  ];
  for (const [extra, pattern] of cases) {
    const res = await run('l2health', ['once'], { ...sandbox().env, ...extra });
    expect(res.exitCode).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(pattern);
  }
  const file = join(sandbox().dir, 'h.json');
  writeFileSync(file, JSON.stringify({ targets: [{ name: 'ml', url: 'http://x/h', timeoutMs: 'soon' }] }));
  const bad = await run('l2health', ['once'], { ...sandbox().env, HEALTH_CONFIG: file });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr).toMatch(/health target "ml" \(.*targets\[0\]\): "timeoutMs" must be a whole number of milliseconds/);
});

test('status with no state says so, and reports the schedule', async () => {
  const res = await run('l2health', ['status'], sandbox().env);
  expect(res.exitCode).toBe(0);
  expect(res.stdout).toMatch(/no health state recorded yet/);
  expect(res.stdout).toMatch(/next health checks: /);
  expect(existsSync(join(sandbox().root, '.l2'))).toBe(false);
});
