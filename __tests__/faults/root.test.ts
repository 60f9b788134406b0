/**
 * A command run by hand as root on the volume (`docker compose exec cron l2backup snapshot`)
 * must not leave root-owned state that breaks the job user's next cron run. The programs
 * become the job user themselves: L2_RUN_AS, else the owner of the state folder. Needs root.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { deadPort } from '../helpers/receiver.js';
import { startTargets, type Targets } from '../helpers/targets.js';

const USER = `l2rt${process.pid % 100000}`;
let uid = 0;
let targets: Targets;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the root-run tests need root (CI runs as root)');
  await execa('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
  uid = Number((await execa('id', ['-u', USER])).stdout);
  targets = await startTargets();
});
afterAll(async () => {
  await targets?.close();
  await execa('userdel', [USER], { reject: false });
});

function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    out.push(p);
    if (lstatSync(p).isDirectory()) out.push(...allFiles(p));
  }
  return out;
}

/** Runs a program as the job user, as cron does. */
function asJobUser(program: 'l2alert' | 'l2backup' | 'l2health', args: string[], env: Record<string, string>) {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return execa('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', 'env', '-i', ...vars, 'node', bin(program), ...args], { reject: false, all: true });
}

for (const how of ['the owner of the volume', 'L2_RUN_AS'] as const) {
  test(`root runs become the job user (${how}): the job user's next cron runs work, and health sees the backup`, async () => {
    const sb = sandbox({ ALERT_WEBHOOK_URL: `http://127.0.0.1:${await deadPort()}/hook`, ALERT_TIMEOUT_MS: '200', ALERT_BUDGET_MS: '600', HEALTH_ENDPOINTS: `api=${targets.base}/health` });
    const { sources } = makeTree(sb.dir);
    chmodSync(sb.dir, 0o755);
    const env = { ...sb.env, BACKUP_SOURCES: sources, ...(how === 'L2_RUN_AS' ? { L2_RUN_AS: USER } : {}) };
    if (how === 'the owner of the volume') await execa('chown', [`${USER}:${USER}`, sb.root]);
    else await execa('chmod', ['777', sb.root]); // root-owned volume; L2_RUN_AS names the user

    // What an older root run left: a root-owned state folder and 0600 file.
    await execa('sh', ['-c', `mkdir -p ${sb.root}/.l2/health && echo '{}' > ${sb.root}/.l2/health/open-alerts.json && chmod 600 ${sb.root}/.l2/health/open-alerts.json && chmod 700 ${sb.root}/.l2 ${sb.root}/.l2/health`]);
    // By hand, as root: a snapshot, an alert (buffered: the webhook is down), a health run.
    expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
    expect((await run('l2alert', ['send', '--level', 'warning', '--title', 'by root', 'm'], env)).stdout).toMatch(/buffered/);
    await run('l2health', ['once'], env);
    const rootOwned = allFiles(sb.root).filter((p) => lstatSync(p).uid === 0);
    expect(rootOwned).toEqual([]);
    expect(allFiles(sb.root).every((p) => lstatSync(p).uid === uid)).toBe(true);

    // The job user's next runs, as cron would start them (without L2_RUN_AS).
    const cronEnv = { ...sb.env, BACKUP_SOURCES: sources };
    const health = await asJobUser('l2health', ['once', '--json'], cronEnv);
    expect(health.all).not.toMatch(/EACCES|unreadable|internal error/);
    const backupCheck = JSON.parse(String(health.stdout)).results.find((r: { name: string }) => r.name === 'backup');
    expect(backupCheck.status).toBe('up');
    const send = await asJobUser('l2alert', ['send', '--level', 'error', '--title', 'by cron', 'm'], cronEnv);
    expect(send.stdout).toMatch(/not delivered: .*; buffered/);
    expect(send.all).not.toMatch(/cannot be kept|EACCES/);
    const nightly = await asJobUser('l2backup', ['nightly'], cronEnv);
    expect(nightly.all).not.toMatch(/EACCES|internal error/);
    expect(nightly.exitCode).toBe(0);
  });
}

test('root with L2_RUN_AS naming no user: exit 2 and a one-line hint', async () => {
  const sb = sandbox({ L2_RUN_AS: 'no-such-user-l2' });
  const res = await run('l2alert', ['buffer-status'], sb.env);
  expect(res.exitCode).toBe(2);
  expect(res.stderr.trim().split('\n')).toHaveLength(1);
  expect(res.stderr).toMatch(/L2_RUN_AS="no-such-user-l2" is not a user on this machine; create it or unset L2_RUN_AS/);
});

// A root run that could not become the job user ran nothing: it must not leave its end-of-run
// files (the metrics textfile, the status page) behind as root either.
for (const [how, extra, cmd] of [
  ['L2_RUN_AS names no user', { L2_RUN_AS: 'no-such-user-l2' }, []],
  ['the switch to the job user is refused (no CAP_SETUID)', {}, ['setpriv', '--bounding-set', '-setuid,-setgid']],
] as const) {
  test(`root whose switch to the job user fails (${how}): exit 2, and no metrics file or status page is written as root`, async () => {
    const sb = sandbox({ ...extra });
    const metrics = join(sb.dir, 'metrics');
    mkdirSync(metrics);
    const { sources } = makeTree(sb.dir);
    await execa('chown', [`${USER}:${USER}`, sb.root, metrics]);
    const env = { ...sb.env, BACKUP_SOURCES: sources, L2_METRICS_DIR: metrics };
    const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const res = await execa(cmd[0] ?? 'env', [...cmd.slice(1), ...(cmd.length ? ['env'] : []), '-i', ...vars, 'node', bin('l2backup'), 'nightly'], { reject: false, all: true });
    expect(res.exitCode).toBe(2);
    expect(String(res.stderr).trim().split('\n')).toHaveLength(1);
    expect(readdirSync(metrics)).toEqual([]);
    expect(existsSync(join(sb.root, '.l2', 'report'))).toBe(false);
  });
}
