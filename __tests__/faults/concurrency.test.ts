/**
 * Concurrency and kills: 32 alert senders while the receiver is down and then back, a flush
 * killed mid-way, l2health killed mid-write, l2health overlapping itself and a nightly backup.
 * Prints one summary line.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { startReceiver, deadPort, type Receiver } from '../helpers/receiver.js';
import { startTargets, type Targets } from '../helpers/targets.js';
import { tracked, waitFor } from '../helpers/cleanup.js';

const tried: boolean[] = [];
afterAll(() => process.stderr.write(`\nconcurrency suite: ${tried.length} cases tried, ${tried.filter(Boolean).length} survived, ${tried.filter((t) => !t).length} lost\n`));
async function track(fn: () => Promise<void>) {
  let ok = false;
  try {
    await fn();
    ok = true;
  } finally {
    tried.push(ok);
  }
}

const bufferFile = (root: string) => join(root, '.l2/alerts_buffer.jsonl');
const spillDir = (root: string) => `${bufferFile(root)}.spill`;
/** Alerts waiting on the volume: buffer lines, and alerts spilled when the buffer's mutex was busy. */
const buffered = (root: string) => [
  ...(existsSync(bufferFile(root)) ? readFileSync(bufferFile(root), 'utf8').split('\n').filter(Boolean) : []),
  ...(existsSync(spillDir(root)) ? readdirSync(spillDir(root)).map((n) => readFileSync(join(spillDir(root), n), 'utf8').trim()) : []),
];

async function drain(env: Record<string, string>, root: string) {
  for (let i = 0; i < 20 && buffered(root).length > 0; i++) await run('l2alert', ['flush'], env);
}

test('32 senders: receiver down, then back while more are sending: every alert arrives, none torn', () =>
  track(async () => {
    const port = await deadPort();
    const sb = sandbox({ ALERT_WEBHOOK_URL: `http://127.0.0.1:${port}/hook`, ALERT_WEBHOOK_SECRET: 'concurrency-secret', ALERT_MIN_INTERVAL_MS: '0', ALERT_TIMEOUT_MS: '500', ALERT_BUDGET_MS: '3000' });
    const send = (i: number) => run('l2alert', ['send', '--level', 'warning', '--title', `c${i}`, '--key', `c${i}`, `alert ${i}`], sb.env);
    const first = Array.from({ length: 16 }, (_, i) => send(i));
    // The receiver comes back once the first senders have met it down (an alert is buffered).
    await waitFor('a first sender to buffer its alert', () => buffered(sb.root).length > 0);
    let hook: Receiver | undefined;
    try {
      hook = await startReceiver('concurrency-secret', port);
      const second = Array.from({ length: 16 }, (_, i) => send(16 + i));
      const outputs = await Promise.all([...first, ...second]);
      await drain(sb.env, sb.root);
      expect(buffered(sb.root)).toEqual([]);
      expect(existsSync(`${bufferFile(sb.root)}.corrupt`)).toBe(false);
      const titles = new Map<string, Set<string>>();
      for (const r of hook.received) {
        const title = r.body.text.split('\n')[0]!.replace('[WARNING] ', '');
        if (!titles.has(title)) titles.set(title, new Set());
        titles.get(title)!.add(r.id);
      }
      // A lost alert: show what its sender said (and the buffer's side files), to find where it went.
      const lost = Array.from({ length: 32 }, (_, i) => i).filter((i) => !titles.has(`c${i}`));
      const said = lost.map((i) => `c${i} (exit ${outputs[i]!.exitCode}): ${outputs[i]!.all.trim()}`).join('\n');
      const side = ['.l2/alerts_buffer.jsonl.corrupt'].filter((f) => existsSync(join(sb.root, f))).map((f) => `${f}: ${readFileSync(join(sb.root, f), 'utf8')}`);
      expect({ lost: lost.map((i) => `c${i}`), said, side, rejected: hook.rejected }).toEqual({ lost: [], said: '', side: [], rejected: 0 });
      expect([...titles.keys()].sort()).toEqual(Array.from({ length: 32 }, (_, i) => `c${i}`).sort());
      // Duplicates, if any, carry the same id.
      for (const ids of titles.values()) expect(ids.size).toBe(1);
    } finally {
      await hook?.close();
    }
  }));

test('a flush killed mid-way loses nothing (duplicates keep their id)', () =>
  track(async () => {
    const port = await deadPort();
    const sb = sandbox({ ALERT_WEBHOOK_URL: `http://127.0.0.1:${port}/hook`, ALERT_MIN_INTERVAL_MS: '0', ALERT_TIMEOUT_MS: '300', ALERT_BUDGET_MS: '600' });
    for (let i = 0; i < 10; i++) await run('l2alert', ['send', '--level', 'info', '--title', `f${i}`, '--key', `f${i}`, 'm'], sb.env);
    expect(buffered(sb.root)).toHaveLength(10);
    const hook = await startReceiver(undefined, port);
    try {
      hook.script = Array.from({ length: 10 }, () => ({ status: 200, delayMs: 250 }));
      const env = { ...sb.env, ALERT_TIMEOUT_MS: '2000', ALERT_BUDGET_MS: '10000' };
      const child = execa('node', [bin('l2alert'), 'flush'], { env, extendEnv: false, reject: false });
      // Kill it mid-way: after some deliveries, before the last.
      await waitFor('two deliveries', () => hook.received.length >= 2);
      child.kill('SIGKILL');
      await child;
      expect(buffered(sb.root).length).toBeLessThan(10);
      await drain(env, sb.root);
      const byTitle = new Map<string, Set<string>>();
      for (const r of hook.received) {
        const t = r.body.text.split('\n')[0]!;
        if (!byTitle.has(t)) byTitle.set(t, new Set());
        byTitle.get(t)!.add(r.id);
      }
      expect(byTitle.size).toBe(10);
      for (const ids of byTitle.values()) expect(ids.size).toBe(1);
    } finally {
      await hook.close();
    }
  }));

test('l2health killed mid-run: the state file is always whole; overlapping runs and a nightly backup coexist', () =>
  track(async () => {
    // Slow targets keep the runs busy to be killed; far under the latency threshold set below.
    const t: Targets = await startTargets({ slowMs: 400 });
    try {
      const sb = sandbox({ HEALTH_ENDPOINTS: Array.from({ length: 20 }, (_, i) => `t${i}=${t.base}/${i % 3 ? 'health' : 'slow'}`).join(','), HEALTH_LATENCY_WARN_MS: '5000' });
      const state = join(sb.root, '.l2/health/state.json');
      for (let k = 0; k < 10; k++) {
        const child = tracked(execa('node', [bin('l2health'), 'once'], { env: sb.env, extendEnv: false, reject: false }));
        // A random moment after the run has started (its lock taken), not a fixed time after spawn.
        await waitFor('l2health to take its lock', () => existsSync(join(sb.root, '.l2/locks/health.lock')) || child.exitCode !== null);
        await new Promise((r) => setTimeout(r, Math.random() * 500));
        child.kill('SIGKILL');
        await child;
        if (existsSync(state)) expect(() => JSON.parse(readFileSync(state, 'utf8'))).not.toThrow();
      }
      const { sources } = makeTree(sb.dir);
      const env = { ...sb.env, BACKUP_SOURCES: sources };
      const [h1, h2, b] = await Promise.all([run('l2health', ['health-only'], env), run('l2health', ['health-only'], env), run('l2backup', ['nightly'], env)]);
      expect([h1.exitCode, h2.exitCode].sort()).toEqual(h1.exitCode === 75 || h2.exitCode === 75 ? [0, 75] : [0, 0]);
      expect(b.exitCode).toBe(0);
      expect(JSON.parse(readFileSync(state, 'utf8')).targets.t1.status).toBe('up');
    } finally {
      await t.close();
    }
  }));
