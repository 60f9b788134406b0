/**
 * Prometheus textfile metrics end to end: the BUILT programs run as child processes against a
 * real volume, real health targets and a dead webhook; promtool (the Prometheus project's
 * linter and parser) checks the file they leave.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox, type Sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { withTargets } from '../helpers/targets.js';
import { deadPort } from '../helpers/receiver.js';

const t = withTargets();

async function setup(extra: Record<string, string> = {}): Promise<Sandbox & { metrics: string; prom: string }> {
  const probe = sandbox();
  const { sources } = makeTree(probe.dir);
  const metrics = join(probe.dir, 'textfile');
  mkdirSync(metrics);
  const refused = await deadPort();
  const sb = sandbox({
    BACKUP_SOURCES: sources,
    L2_METRICS_DIR: metrics,
    HEALTH_ENDPOINTS: `algo=${t.base}/health`,
    HEALTH_SSE_STREAMS: `book=${t.base}/sse/events`,
    HEALTH_SSE_OBSERVE_MS: '1500',
    HEALTH_TIMEOUT_MS: '15000',
    HEALTH_LATENCY_WARN_MS: '4500',
    HEALTH_FAILURE_THRESHOLD: '1',
    ALERT_WEBHOOK_URL: `http://127.0.0.1:${refused}/hook`,
    ALERT_BUDGET_MS: '2000',
    ALERT_TIMEOUT_MS: '500',
    ...extra,
  });
  // The sandbox's own backups root, with the tree made beside it.
  return { ...sb, metrics, prom: join(metrics, 'l2ops.prom') };
}

async function promtool(text: string) {
  const res = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
  return [res.exitCode, res.stdout.trim(), res.stderr.trim()];
}

/** The samples of a file, by series text (`name{labels}`). */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    m.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return m;
}

test('after real runs of all three programs, l2ops.prom passes promtool and says what the volume says', async () => {
  const sb = await setup();
  expect((await run('l2backup', ['nightly'], sb.env)).exitCode).toBe(0);
  let text = readFileSync(sb.prom, 'utf8');
  expect(await promtool(text)).toEqual([0, '', '']);
  let s = samples(text);
  const lastRun = JSON.parse(readFileSync(join(sb.root, '.l2/backup/last-run.json'), 'utf8'));
  expect(s.get('l2backup_last_run_status{status="ok"}')).toBe(1);
  expect(s.get('l2backup_last_run_status{status="failed"}')).toBe(0);
  expect(s.get('l2backup_last_success_timestamp_seconds')).toBe(Date.parse(lastRun.finishedAt) / 1000);
  expect(s.get('l2backup_last_run_duration_seconds')).toBe(lastRun.durationMs / 1000);
  expect(s.get('l2backup_snapshot_bytes{source="reports"}')).toBe(Buffer.byteLength('date,pnl\n2025-10-03,12.5\n') + Buffer.byteLength('unicode\n'));
  expect(s.get('l2backup_remote_pending_snapshots')).toBe(0);
  expect(s.get('l2alert_buffered_alerts')).toBe(1); // the run's "backup ok" alert, the webhook being down
  expect(statSync(sb.prom).mode & 0o777).toBe(0o644);

  // A health state that already holds a target whose name needs every escape (a copied or
  // hand-edited volume): the file stays valid, the name is escaped.
  const health = join(sb.root, '.l2/health');
  mkdirSync(health, { recursive: true });
  const now = new Date().toISOString();
  const odd = 'we"ird\\name\nx';
  writeFileSync(join(health, 'state.json'), JSON.stringify({ version: 1, targets: { [odd]: { kind: 'http', status: 'down', since: now, consecutiveBad: 3, consecutiveGood: 0, lastCheckAt: now, lastLatencyMs: 12, history: [] } } }));
  const hres = await run('l2health', ['once'], sb.env);
  expect(hres.stderr).not.toMatch(/metrics not written/);
  text = readFileSync(sb.prom, 'utf8');
  expect(await promtool(text)).toEqual([0, '', '']);
  s = samples(text);
  expect(s.get('l2health_probe_success{target="algo",kind="http"}')).toBe(1);
  expect(s.get('l2health_probe_success{target="book",kind="sse"}')).toBe(1);
  expect(s.get('l2health_probe_success{target="backup",kind="backup"}')).toBe(1);
  expect(s.get('l2health_probe_success{target="we\\"ird\\\\name\\nx",kind="http"}')).toBe(0);
  expect(s.get('l2health_probe_duration_seconds{target="we\\"ird\\\\name\\nx"}')).toBe(0.012);
  expect(s.get('l2health_sse_max_gap_seconds{target="book"}')).toBeGreaterThan(0);
  expect(s.get('l2health_probe_duration_seconds{target="algo"}')).toBeGreaterThanOrEqual(0);
  // Backup's families are still there: every writer renders everything from the volume.
  expect(s.get('l2backup_last_run_status{status="ok"}')).toBe(1);

  expect([0, 1]).toContain((await run('l2alert', ['send', '--level', 'warning', '--title', 'disk', 'nearly full'], sb.env)).exitCode);
  s = samples(readFileSync(sb.prom, 'utf8'));
  const buffered = readFileSync(join(sb.root, '.l2/alerts_buffer.jsonl'), 'utf8').trim().split('\n').length;
  expect(s.get('l2alert_buffered_alerts')).toBe(buffered);
  expect(s.get('l2alert_dropped_alerts_total')).toBe(0);
  expect(s.get('l2health_probe_success{target="algo",kind="http"}')).toBe(1);
  expect(readdirSync(sb.metrics)).toEqual(['l2ops.prom']);
});

test('read-only commands leave the file alone; a partial run rewrites it with its status', async () => {
  const sb = await setup();
  expect((await run('l2backup', ['status'], sb.env)).exitCode).toBe(0);
  expect((await run('l2health', ['status'], sb.env)).exitCode).toBe(0);
  expect(existsSync(sb.prom)).toBe(false);
  const res = await run('l2backup', ['nightly'], { ...sb.env, BACKUP_SOURCES: `${sb.env.BACKUP_SOURCES},gone=/nonexistent/l2ops-gone` });
  expect(res.exitCode).toBe(3);
  const text = readFileSync(sb.prom, 'utf8');
  expect(await promtool(text)).toEqual([0, '', '']);
  const s = samples(text);
  expect(s.get('l2backup_last_run_status{status="partial"}')).toBe(1);
  expect(s.get('l2backup_last_run_status{status="ok"}')).toBe(0);
  expect(s.get('l2backup_snapshot_bytes{source="gone"}')).toBe(0);
});

test('L2_METRICS_DIR that is missing or not a folder: exit 2 at load, one line naming it', async () => {
  const sb = await setup();
  for (const [value, words] of [
    [join(sb.dir, 'nope'), 'does not exist'],
    [join(sb.dir, 'env'), 'is not a folder'],
  ] as const) {
    for (const [prog, args] of [
      ['l2backup', ['nightly']],
      ['l2health', ['once']],
      ['l2alert', ['test']],
    ] as const) {
      const res = await run(prog, [...args], { ...sb.env, L2_METRICS_DIR: value });
      expect([prog, res.exitCode]).toEqual([prog, 2]);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(res.stderr).toContain(`L2_METRICS_DIR (from env)=${value} ${words}`);
    }
  }
  expect(readdirSync(sb.root)).toEqual([]); // nothing ran
});

test('a metrics file that cannot be written is a warning, never a failed run, and leaves no temp file', async () => {
  const sb = await setup();
  mkdirSync(sb.prom); // a folder where the file belongs: rename(2) fails
  const res = await run('l2backup', ['nightly'], sb.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/WARN {2}l2backup: metrics not written to .*l2ops\.prom \(L2_METRICS_DIR\): EISDIR/);
  expect(readdirSync(sb.metrics)).toEqual(['l2ops.prom']);
});

test('three programs at once, several rounds: the file is always whole and ends up with every program\'s last state', async () => {
  const sb = await setup({ HEALTH_SSE_OBSERVE_MS: '0' });
  for (let round = 0; round < 3; round++) {
    const runs = await Promise.all([run('l2backup', ['snapshot'], sb.env), run('l2health', ['once'], sb.env), run('l2alert', ['send', '--level', 'error', '--title', `r${round}`, 'x'], sb.env)]);
    for (const r of runs) expect(r.stderr).not.toMatch(/metrics not written/);
    const text = readFileSync(sb.prom, 'utf8');
    expect(await promtool(text)).toEqual([0, '', '']);
    const s = samples(text);
    const lastRun = JSON.parse(readFileSync(join(sb.root, '.l2/backup/last-run.json'), 'utf8'));
    const health = JSON.parse(readFileSync(join(sb.root, '.l2/health/state.json'), 'utf8'));
    const buffered = readFileSync(join(sb.root, '.l2/alerts_buffer.jsonl'), 'utf8').trim().split('\n').length;
    // The last writer read the state after every run of the round had written its own.
    expect(s.get('l2backup_last_run_timestamp_seconds')).toBe(Date.parse(lastRun.finishedAt) / 1000);
    expect(s.get('l2health_last_run_timestamp_seconds')).toBe(Date.parse(health.lastRunAt) / 1000);
    expect(s.get('l2alert_buffered_alerts')).toBe(buffered);
    expect(readdirSync(sb.metrics)).toEqual(['l2ops.prom']);
  }
});

test('a writer frozen while holding the metrics lock does not keep the others from writing theirs', async () => {
  const sb = await setup();
  // A live process (a sleeping stand-in for a frozen writer) owns the metrics lock.
  const sleeper = execa('sleep', ['600'], { reject: false });
  const pid = sleeper.pid!;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const procStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  mkdirSync(join(sb.root, '.l2/locks'), { recursive: true });
  writeFileSync(join(sb.root, '.l2/locks/metrics.lock'), JSON.stringify({ pid, host: (await import('node:os')).hostname(), startedAt: new Date().toISOString(), command: 'metrics', token: 'frozen', procStart }) + '\n');
  try {
    const res = await run('l2backup', ['nightly'], sb.env);
    expect(res.exitCode).toBe(0);
    expect(res.stderr).not.toMatch(/metrics not written/);
    const s = samples(readFileSync(sb.prom, 'utf8'));
    expect(s.get('l2backup_last_run_status{status="ok"}')).toBe(1);
  } finally {
    sleeper.kill('SIGKILL');
    await sleeper;
  }
});
