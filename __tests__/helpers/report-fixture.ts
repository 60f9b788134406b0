/**
 * A backups volume with a history worth drawing, for the status page tests: real runs of the
 * built programs (a nightly, a partial snapshot, health checks against real servers with one
 * target flapping, alerts buffered against a dead webhook and dead-lettered by a receiver that
 * rejects them), on top of older history written in the programs' exact formats (the types are
 * the programs' own, and the health history comes from the real transition function).
 */
import { mkdirSync, writeFileSync, appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RunRecord, RemoteRecord } from '../../src/backup/records.js';
import { transition, type HealthState, type OpenAlerts, type TargetState } from '../../src/health/state.js';
import type { CheckResult } from '../../src/health/types.js';
import { idFor } from '../../src/backup/layout.js';
import { deadPort, startReceiver } from './receiver.js';
import { startTargets } from './targets.js';
import { run, sandbox, type Sandbox } from './run.js';

export const HOSTILE_TARGET = '<script>alert(1)</script>';
export const NEWLINE_TARGET = 'feed\nsplit';
export const FLAPPING = 'flappy';

const DAY = 86_400_000;
const MB = 1024 * 1024;

function syntheticRuns(now: number, n: number): RunRecord[] {
  const out: RunRecord[] = [];
  for (let i = n; i >= 1; i--) {
    const finished = now - i * DAY + 7 * 60_000;
    const started = finished - (90_000 + ((i * 37) % 11) * 20_000);
    const id = idFor(now - i * DAY - ((now - i * DAY) % 60_000));
    const status: RunRecord['status'] = i === 3 || i === 17 ? 'failed' : i === 9 || i === 22 ? 'partial' : i === 5 ? 'pending' : 'ok';
    const bytes = Math.round((2000 + (n - i) * 35 + ((i * 13) % 7) * 40) * MB);
    const rec: RunRecord = {
      command: 'l2backup nightly',
      status,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      id,
      kind: 'nightly',
      durationMs: status === 'failed' ? 12_000 + i * 100 : finished - started,
    };
    if (status !== 'failed') Object.assign(rec, { files: 12_000 + (n - i) * 40, bytes, newBytes: Math.round((((i * 7) % 9) + 1) * 18 * MB), remote: status === 'pending' ? 'pending' : 'uploaded', warnings: 0 });
    if (status === 'failed') rec.error = i === 3 ? 'source models: EIO reading /data/models/lob.pt' : 'no space left on device (ENOSPC) writing /backups/.tmp-x';
    if (status === 'partial') rec.warnings = 2;
    if (status === 'pending') Object.assign(rec, { error: 'upload of ' + id + ' to s3://l2trading/snapshots/ failed: connection reset', remotePendingSince: rec.finishedAt });
    out.push(rec);
  }
  return out;
}

/** Checks every 5 minutes for 7 days, through the real transition rules. */
function syntheticHealth(now: number): { state: HealthState; open: OpenAlerts } {
  const th = { failure: 2, success: 1, reminderMinutes: 60 };
  const targets: Record<string, TargetState> = {};
  const open: OpenAlerts = {};
  const plan: [string, CheckResult['kind'], (t: number, k: number) => [CheckResult['status'], number]][] = [
    ['api', 'http', (_t, k) => [k % 97 === 0 ? 'degraded' : 'up', 40 + ((k * 17) % 30)]],
    // flapping: down for 15-25 minutes every ~2 hours over the last day, steady before
    [FLAPPING, 'http', (t, k) => [now - t < DAY && k % 24 < 4 + (k % 3) ? 'down' : 'up', 120 + ((k * 29) % 200) + (now - t < DAY ? ((k * 53) % 600) : 0)]],
    ['market-sse', 'sse', (_t, k) => [k % 400 < 3 ? 'down' : 'up', 300 + ((k * 11) % 150)]],
    [HOSTILE_TARGET, 'http', (t, k) => [now - t < 3 * 3_600_000 ? 'down' : 'up', 80 + (k % 20)]],
    [NEWLINE_TARGET, 'sse', (t, k) => [now - t < 2 * DAY && k % 5 === 0 ? 'degraded' : 'up', 900 + ((k * 7) % 400)]],
  ];
  const steps = (7 * DAY) / 300_000;
  for (let k = 0; k <= steps; k++) {
    const t = now - 7 * DAY + k * 300_000;
    for (const [name, kind, f] of plan) {
      const [status, latencyMs] = f(t, k);
      const r: CheckResult = { name, kind, status, latencyMs, reason: status === 'up' ? 'HTTP 200' : status === 'degraded' ? `slow: ${latencyMs} ms` : 'HTTP 503 from http://ops:hunter2secret@10.0.0.5/health?token=abcdef123456' };
      const res = transition(name, targets[name], open[name], r, t, th);
      targets[name] = res.state;
      if (res.open) open[name] = res.open;
      else delete open[name];
    }
  }
  return { state: { version: 1, lastRunAt: new Date(now).toISOString(), targets }, open };
}

export interface Fixture {
  box: Sandbox;
  closers: (() => Promise<void>)[];
}

export async function buildFixtureVolume(): Promise<Fixture> {
  const closers: (() => Promise<void>)[] = [];
  const servers = await startTargets();
  closers.push(() => servers.close());
  const box = sandbox();
  const models = join(box.dir, 'models');
  const logs = join(box.dir, 'logs');
  mkdirSync(models);
  mkdirSync(logs);
  for (let i = 0; i < 20; i++) writeFileSync(join(models, `m${i}.bin`), Buffer.alloc(4096 + i * 1000, i));
  writeFileSync(join(logs, 'a\nnewline.log'), 'log with a newline in its name\n');
  const now = Date.now();

  // Older history, in the exact formats.
  const state = join(box.root, '.l2');
  mkdirSync(join(state, 'backup', 'remote'), { recursive: true, mode: 0o700 });
  mkdirSync(join(state, 'health'), { recursive: true, mode: 0o700 });
  const runs = syntheticRuns(now, 34);
  appendFileSync(join(state, 'backup', 'runs.jsonl'), runs.map((r) => JSON.stringify(r) + '\n').join(''));
  for (const r of runs.slice(-6)) {
    const rec: RemoteRecord = r.status === 'pending' ? { id: r.id!, state: 'pending', kind: 'nightly', pendingSince: r.finishedAt, attempts: 2, lastError: 'connection reset by peer' } : { id: r.id!, state: 'uploaded', kind: 'nightly', attempts: 1, uploadedAt: r.finishedAt, bytesSent: r.newBytes };
    if (r.status !== 'failed') writeFileSync(join(state, 'backup', 'remote', `${r.id}.json`), JSON.stringify(rec, null, 2));
  }
  const health = syntheticHealth(now - 60_000);
  writeFileSync(join(state, 'health', 'state.json'), JSON.stringify(health.state, null, 2));
  writeFileSync(join(state, 'health', 'open-alerts.json'), JSON.stringify(health.open, null, 2));
  writeFileSync(join(state, 'backup', 'last-drill.json'), JSON.stringify({ id: runs[runs.length - 2]!.id, status: 'ok', finishedAt: new Date(now - 2 * DAY).toISOString(), durationMs: 48_000, filesChecked: 12_345, restoredTo: '/tmp/drill-<x>' }, null, 2));

  // Real runs of the built programs.
  const env = { ...box.env, BACKUP_SOURCES: `models=${models},logs=${logs}` };
  const ok = await run('l2backup', ['nightly'], env);
  if (ok.exitCode !== 0) throw new Error(`fixture nightly failed: ${ok.all}`);
  const partial = await run('l2backup', ['snapshot'], { ...env, BACKUP_SOURCES: `models=${models},logs=${logs},reports=${join(box.dir, 'missing-reports')}` });
  if (partial.exitCode !== 3) throw new Error(`fixture partial snapshot: expected exit 3, got ${partial.exitCode}: ${partial.all}`);

  // Alerts: buffered against a dead webhook, then one digest rejected for good (dead letter).
  const dead = `http://127.0.0.1:${await deadPort()}/hook`;
  const alertEnv = { ...env, ALERT_WEBHOOK_URL: dead, ALERT_TIMEOUT_MS: '3000', ALERT_BUDGET_MS: '10000', ALERT_MIN_INTERVAL_MS: '10' };
  const sends: [string, string][] = [
    ['rejected one', 'k-dead'],
    ['disk filling', 'k-disk'],
    ['<img src=x onerror=alert(1)>', 'k-html'],
  ];
  for (const [title, key] of sends)
    await run('l2alert', ['send', '--level', 'warning', '--title', title, '--key', key, `message for ${title}`], alertEnv);
  const receiver = await startReceiver();
  closers.push(() => receiver.close());
  receiver.script = [400];
  receiver.fallback = 503;
  await run('l2alert', ['flush'], { ...alertEnv, ALERT_WEBHOOK_URL: receiver.url });

  // Health: the flapping target is down right now (real server answering 500).
  servers.flakyStatus = 500;
  const healthEnv = { ...alertEnv, HEALTH_ENDPOINTS: `api=${servers.base}/health,${FLAPPING}=${servers.base}/flaky`, HEALTH_TIMEOUT_MS: '20000', HEALTH_RUN_BUDGET_MS: '60000' };
  for (let i = 0; i < 2; i++) await run('l2health', ['once'], healthEnv);
  rmSync(join(box.dir, 'missing-reports'), { recursive: true, force: true });
  return { box, closers };
}
