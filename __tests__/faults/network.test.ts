/**
 * Network faults through a proxy on 127.0.0.1 in front of the S3 server and the webhook
 * receiver: refused connections, resets mid-body, delays past the timeout, 500/503 bursts,
 * 429 with Retry-After, truncated responses. Uploads retry or end as "remote pending" and
 * catch up; no corrupt object is recorded as good; alerts end delivered or buffered.
 * Prints one summary line.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { withS3Server } from '../helpers/s3.js';
import { withReceiver } from '../helpers/receiver.js';
import { withFaultProxy, type Fault } from '../helpers/fault-proxy.js';

const s3 = withS3Server();
const s3proxy = withFaultProxy(() => s3.endpoint);
const hook = withReceiver();
const hookProxy = withFaultProxy(() => `http://127.0.0.1:${hook.port}`);
const tried: boolean[] = [];
afterAll(() => {
  process.stderr.write(`\nnetwork suite: ${tried.length} cases tried, ${tried.filter(Boolean).length} survived, ${tried.filter((t) => !t).length} lost\n`);
});

const modes: [string, Fault | 'refuse', number][] = [
  ['connection reset mid-body', 'reset', 3],
  ['500 burst', '500', 3],
  ['503 burst', '503', 6],
  ['429 with Retry-After', '429', 2],
  ['truncated responses', 'truncate', 3],
  ['delay past the timeout', 'delay', 2],
  ['refused connections', 'refuse', 0],
];

test.each(modes)('S3 behind %s: retried or pending, then caught up; nothing corrupt recorded as good', async (_name, fault, count) => {
  let ok = false;
  try {
    const sb = sandbox();
    const { data, sources } = makeTree(sb.dir);
    const prefix = `net-${fault}`;
    const env = {
      ...sb.env,
      BACKUP_SOURCES: sources,
      BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`,
      S3_ENDPOINT: s3proxy.url,
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      S3_TIMEOUT_MS: '2000',
    };
    s3proxy.delayMs = 5000;
    if (fault === 'refuse') await s3proxy.refuse();
    else s3proxy.faults = Array.from({ length: count }, () => fault);
    const first = await run('l2backup', ['nightly'], env);
    if (fault === 'refuse') await s3proxy.accept();
    s3proxy.faults = [];
    expect([0, 1]).toContain(first.exitCode);
    if (first.exitCode === 1) expect(first.stderr).toMatch(/remote pending|upload of \d{8}-\d{6} .*failed/);
    appendFileSync(join(data, 'logs/guardrails.log'), 'after the fault\n');
    const second = await run('l2backup', ['nightly'], env);
    expect(second.exitCode).toBe(0);
    const status = JSON.parse((await run('l2backup', ['status', '--json'], env)).stdout);
    expect(status.remote.pending).toEqual([]);
    const remote = JSON.parse((await run('l2backup', ['list', '--remote', '--json'], env)).stdout) as { id: string; complete: boolean }[];
    expect(remote.length).toBe(2);
    for (const r of remote) {
      expect(r.complete).toBe(true);
      const v = await run('l2backup', ['verify', r.id, '--remote'], env);
      expect(v.exitCode).toBe(0);
    }
    ok = true;
  } finally {
    tried.push(ok);
  }
}, 300_000);

test.each(modes)('webhook behind %s: every alert ends delivered or buffered, then delivered', async (_name, fault, count) => {
  let ok = false;
  try {
    const sb = sandbox({ ALERT_WEBHOOK_URL: `${hookProxy.url}/hook`, ALERT_MIN_INTERVAL_MS: '0', ALERT_TIMEOUT_MS: '1000', ALERT_BUDGET_MS: '4000' });
    hookProxy.delayMs = 3000;
    if (fault === 'refuse') await hookProxy.refuse();
    else hookProxy.faults = Array.from({ length: count }, () => fault);
    const title = `net-${fault}`;
    const before = hook.received.length;
    const res = await run('l2alert', ['send', '--level', 'error', '--title', title, 'm'], sb.env);
    if (fault === 'refuse') await hookProxy.accept();
    hookProxy.faults = [];
    expect(res.stdout).toMatch(/^(delivered|not delivered: .*; buffered)/);
    await run('l2alert', ['flush'], sb.env);
    const got = hook.received.slice(before).filter((r) => r.body.text.includes(title));
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(new Set(got.map((r) => r.id)).size).toBe(1);
    const st = JSON.parse((await run('l2alert', ['buffer-status', '--json'], sb.env)).stdout);
    expect(st.count).toBe(0);
    ok = true;
  } finally {
    tried.push(ok);
  }
}, 300_000);
