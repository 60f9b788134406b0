/**
 * Delivery truths, against the built l2alert and a real signature-checking receiver: every
 * message has its own id, digests never fold different states, a permanent rejection cannot
 * block the queue, and upstream text cannot inject Slack mentions or forge log lines.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startReceiver, deadPort, type Receiver } from '../helpers/receiver.js';
import { run, sandbox } from '../helpers/run.js';

const SECRET = 'delivery-secret-5678';
let receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});
async function receiver(port = 0) {
  const r = await startReceiver(SECRET, port);
  receivers.push(r);
  return r;
}
const env = (url: string, extra: Record<string, string> = {}) =>
  sandbox({ ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: SECRET, ALERT_MIN_INTERVAL_MS: '0', ALERT_TIMEOUT_MS: '300', ALERT_BUDGET_MS: '800', ...extra });
const buffered = (root: string) => {
  const f = join(root, '.l2/alerts_buffer.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; title: string }) : [];
};
const headline = (r: Receiver) => r.received.map((x) => x.body.text.split('\n')[0]!);

/** Alerts raised while the webhook is down, so they wait in the buffer. */
async function raiseWhileDown(alerts: { level: string; title: string; key: string; message?: string }[]) {
  const port = await deadPort();
  const sb = env(`http://127.0.0.1:${port}/hook`);
  for (const a of alerts) expect((await run('l2alert', ['send', '--level', a.level, '--title', a.title, '--key', a.key, a.message ?? 'm'], sb.env)).exitCode).toBe(1);
  return { sb, port, flushEnv: { ...sb.env, ALERT_BUDGET_MS: '6000', ALERT_TIMEOUT_MS: '2000' } };
}

test('a digest has its own id, derived from all its alert ids, and its body lists them', async () => {
  const { sb, port, flushEnv } = await raiseWhileDown([
    { level: 'error', title: 'algo DOWN', key: 'algo' },
    { level: 'error', title: 'algo DOWN', key: 'algo' },
  ]);
  const ids = buffered(sb.root).map((a) => a.id);
  expect(ids).toHaveLength(2);
  const r = await receiver(port);
  expect((await run('l2alert', ['flush'], flushEnv)).exitCode).toBe(0);
  expect(r.received).toHaveLength(1);
  const got = r.received[0]!;
  expect(ids).not.toContain(got.id);
  expect(got.id).toMatch(/^[0-9a-f-]{36}$/);
  expect((got.body as unknown as { alert_ids: string[] }).alert_ids).toEqual(ids);
  expect((got.body as unknown as { message_id: string }).message_id).toBe(got.id);
});

test('digests tell the truth: a DOWN and its RESOLVED are two messages, in time order, each at its own level', async () => {
  const { port, flushEnv } = await raiseWhileDown([
    { level: 'error', title: 'algo DOWN', key: 'l2health:algo' },
    { level: 'error', title: 'algo DOWN', key: 'l2health:algo' },
    { level: 'warning', title: 'book DEGRADED', key: 'l2health:book' },
    { level: 'info', title: 'algo RESOLVED', key: 'l2health:algo' },
    { level: 'error', title: 'algo DOWN', key: 'l2health:algo' },
  ]);
  const r = await receiver(port);
  expect((await run('l2alert', ['flush'], flushEnv)).exitCode).toBe(0);
  expect(headline(r).map((h) => h.replace(/, \d\d:\d\d–\d\d:\d\d UTC$/, ''))).toEqual(['[ERROR] 2 × algo DOWN', '[WARNING] book DEGRADED', '[INFO] algo RESOLVED', '[ERROR] algo DOWN']);
});

test('a permanently rejected message goes to the dead letters with an ALERT line; the rest are delivered', async () => {
  const { sb, port, flushEnv } = await raiseWhileDown([
    { level: 'warning', title: 'first', key: 'k1' },
    { level: 'warning', title: 'second', key: 'k2' },
    { level: 'warning', title: 'third', key: 'k3' },
  ]);
  const first = buffered(sb.root)[0]!;
  const r = await receiver(port);
  r.script = [400];
  const flush = await run('l2alert', ['flush'], flushEnv);
  expect(flush.exitCode).toBe(1);
  expect(headline(r)).toEqual(['[WARNING] second', '[WARNING] third']);
  expect(flush.stderr).toMatch(/ALERT +l2alert: \[error\] the webhook rejected alert "first" .*HTTP 400.*moved to the dead letters .*alerts_buffer\.jsonl\.dead/);
  expect(buffered(sb.root)).toEqual([]);
  const dead = readFileSync(join(sb.root, '.l2/alerts_buffer.jsonl.dead'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  expect(dead).toHaveLength(1);
  expect(dead[0]).toMatchObject({ alert: { id: first.id, title: 'first' }, status: 400 });
  const status = JSON.parse((await run('l2alert', ['buffer-status', '--json'], flushEnv)).stdout);
  expect(status).toMatchObject({ count: 0, deadLetters: 1 });
  // A later flush does not send it again.
  await run('l2alert', ['flush'], flushEnv);
  expect(headline(r)).toHaveLength(2);
});

test('escaping: <!channel>, <html> and & from upstream are shown in Slack mrkdwn, not interpreted', async () => {
  const r = await receiver();
  const sb = env(r.url, { ALERT_BUDGET_MS: '6000', ALERT_TIMEOUT_MS: '2000' });
  const forged = `upstream said <!channel> <html><b>boom</b></html> & more`;
  const res = await run('l2alert', ['send', '--level', 'error', '--title', 'api <!here>', forged], sb.env);
  expect(res.exitCode).toBe(0);
  const body = r.received[0]!.body as unknown as { text: string; blocks: { text?: { text: string } }[] };
  const shown = [body.text, body.blocks[0]!.text!.text].join('\n');
  expect(shown).toContain('&lt;!channel&gt; &lt;html&gt;&lt;b&gt;boom&lt;/b&gt;&lt;/html&gt; &amp; more');
  expect(shown).toContain('api &lt;!here&gt;');
  expect(shown).not.toMatch(/<!channel>|<!here>|<html>|& more/);
});

test('control characters in a title or message cannot forge a log line', async () => {
  const r = await receiver();
  const sb = env(r.url, { ALERT_BUDGET_MS: '6000', ALERT_TIMEOUT_MS: '2000' });
  const forged = `upstream failed\n2026-01-01T00:00:00.000Z ALERT l2alert: [critical] forged line`;
  const res = await run('l2alert', ['send', '--level', 'error', '--title', 'api\r\n2026-01-01T00:00:00.000Z ALERT x', forged], sb.env);
  expect(res.exitCode).toBe(0);
  const alertLines = res.stderr.split('\n').filter((l) => l.includes('ALERT'));
  expect(alertLines).toHaveLength(1);
  expect(res.stderr.split('\n').filter((l) => l.startsWith('2026-01-01T00:00:00.000Z'))).toEqual([]);
});
