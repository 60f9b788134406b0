/**
 * The schedule with the real Debian cron and crontab, outside a container: the crontab
 * installs for a non-root user and reads back, every job line runs the way cron runs it
 * (/bin/sh -c, cron's environment only, as that user, configuration only in the env file),
 * and the real cron daemon runs a job. Needs root and Debian's cron (.ci/run installs it).
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { ROOT } from './helpers/run.js';
import { makeTree } from './helpers/tree.js';
import { testUser, tracked, waitFor, scratch } from './helpers/cleanup.js';
import { parseCrontab, nextRunFrom } from '../src/schedule/index.js';

let USER = '';
const CRONTAB = readFileSync(join(ROOT, 'crontab'), 'utf8');
let uid = 0;
let gid = 0;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the cron tests need root (CI runs as root): they create a user and install crontabs');
  USER = await testUser();
  uid = Number((await execa('id', ['-u', USER])).stdout);
  gid = Number((await execa('id', ['-g', USER])).stdout);
});

afterAll(async () => {
  await execa('crontab', ['-u', USER, '-r'], { reject: false });
});

function userDir(): string {
  const dir = mkdtempSync(join(scratch(), 'l2cron-'));
  chmodSync(dir, 0o755);
  chownSync(dir, uid, gid);
  return dir;
}

function chownTree(path: string): Promise<unknown> {
  return execa('chown', ['-R', `${uid}:${gid}`, path]);
}

/** The crontab with this machine's paths in its variable lines; job lines untouched. */
function localCrontab(dir: string): string {
  return CRONTAB.replace(/^L2_APP=.*$/m, `L2_APP=${join(ROOT, 'scripts')}`)
    .replace(/^L2_ENV_FILE=.*$/m, `L2_ENV_FILE=${join(dir, 'env')}`)
    .replace(/^L2_LOG=.*$/m, `L2_LOG=${join(dir, 'cron.log')}`);
}

test('the crontab passes crontab, installs for the non-root user and reads back unchanged', async () => {
  const file = join(userDir(), 'crontab');
  writeFileSync(file, CRONTAB);
  const install = await execa('crontab', ['-u', USER, file], { reject: false, all: true });
  expect(install.all).toBe('');
  expect(install.exitCode).toBe(0);
  const back = await execa('crontab', ['-u', USER, '-l']);
  expect(back.stdout.trim()).toBe(CRONTAB.trim());
  // What the runbook asks of it.
  const tab = parseCrontab(CRONTAB);
  expect(tab.jobs.map((j) => [j.expression, j.command.split(' ')[0], j.command.split(' ')[1]])).toEqual([
    ['0 2 * * *', '"$L2_APP/backup.sh"', 'nightly'],
    ['*/5 * * * *', '"$L2_APP/health-monitor.sh"', 'once'],
    ['0 3 * * 1', '"$L2_APP/backup.sh"', 'cleanup-logs'],
  ]);
  expect(tab.vars).toMatchObject({ SHELL: '/bin/sh', TZ: 'UTC', L2_ENV_FILE: '/app/.env' });
  const next = await nextRunFrom(CRONTAB, 'nightly', /backup\.sh"? nightly/, new Date('2025-10-03T21:00:00Z'));
  expect(next.next).toBe('2025-10-04T02:00:00.000Z');
  const cleanup = await nextRunFrom(CRONTAB, 'cleanup', /cleanup-logs/, new Date('2025-10-03T21:00:00Z'));
  expect(cleanup.next).toBe('2025-10-06T03:00:00.000Z');
});

test("crontab's own syntax check rejects a broken line", async () => {
  const file = join(userDir(), 'bad');
  writeFileSync(file, '61 2 * * * true\n');
  const res = await execa('crontab', ['-u', USER, file], { reject: false, all: true });
  expect(res.exitCode).not.toBe(0);
  expect(res.all).toMatch(/bad minute/);
});

test("every job line runs the way cron runs it: sh -c, cron's environment, as the non-root user", async () => {
  const dir = userDir();
  const { data, sources } = makeTree(dir);
  const root = join(dir, 'backups');
  mkdirSync(root);
  // Configuration only in the env file: cron passes none of it.
  writeFileSync(join(dir, 'env'), `BACKUP_ROOT=${root}\nBACKUP_SOURCES=${sources}\nHEALTH_ENDPOINTS=self=http://127.0.0.1:1/health\nHEALTH_TIMEOUT_MS=500\nS3_SECRET_ACCESS_KEY=\n`);
  await chownTree(dir);
  const tab = parseCrontab(localCrontab(dir));
  const home = (await execa('getent', ['passwd', USER])).stdout.split(':')[5]!;
  const cronEnv = { HOME: home, LOGNAME: USER, PATH: '/usr/bin:/bin', SHELL: '/bin/sh', ...tab.vars };
  const codes: number[] = [];
  for (const job of tab.jobs) {
    const res = await execa('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', 'env', '-i', ...Object.entries(cronEnv).map(([k, v]) => `${k}=${v}`), '/bin/sh', '-c', job.command], { reject: false, all: true });
    expect(res.all).toBe('');
    codes.push(res.exitCode ?? -1);
  }
  // nightly ok; health once finds the target down (exit 1, as documented); cleanup ok
  expect(codes).toEqual([0, 1, 0]);
  const log = readFileSync(join(dir, 'cron.log'), 'utf8');
  expect(log).toMatch(/INFO {2}l2backup: nightly \d{8}-\d{6}: \d+ files/);
  expect(log).toMatch(/ALERT l2health: \[error\] self DOWN|self .*DOWN/);
  expect(log).toMatch(/deleted 0 log file\(s\)/);
  expect(log).not.toContain(String.fromCharCode(27));
  const snap = (await execa('ls', [root])).stdout.trim().split('\n')[0]!;
  expect(existsSync(join(root, snap, 'models/model.bin'))).toBe(true);
  // Files on the volume belong to the job user, state is private.
  const st = await execa('stat', ['-c', '%U %a', join(root, '.l2'), join(root, '.l2/backup/last-run.json')]);
  expect(st.stdout.split('\n')).toEqual([`${USER} 700`, `${USER} 600`]);
  expect(existsSync(data)).toBe(true);
});

test('status reads the installed crontab and says when the jobs run next', async () => {
  const dir = userDir();
  writeFileSync(join(dir, 'env'), `BACKUP_ROOT=${join(dir, 'b')}\nHEALTH_ENDPOINTS=x=http://127.0.0.1:1/\n`);
  await chownTree(dir);
  await execa('crontab', ['-u', USER, '-'], { input: localCrontab(dir) });
  const asUser = (args: string[]) =>
    execa('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', 'env', '-i', `PATH=${process.env.PATH}`, `L2_ENV_FILE=${join(dir, 'env')}`, 'NO_COLOR=1', 'node', ...args], { reject: false, all: true });
  const backup = await asUser([join(ROOT, 'bin/l2backup.js'), 'status']);
  expect(backup.exitCode).toBe(0);
  expect(backup.stdout).toMatch(/next nightly: \d{4}-\d\d-\d\d 02:00 UTC \(in /);
  const health = await asUser([join(ROOT, 'bin/l2health.js'), 'status', '--json']);
  expect(JSON.parse(health.stdout).nextRun.expression).toBe('*/5 * * * *');
  await execa('crontab', ['-u', USER, '-r']);
  const none = await asUser([join(ROOT, 'bin/l2backup.js'), 'status']);
  expect(none.stderr).toMatch(/WARN .*no crontab installed for this user/);
});

test('the wrappers work by path from the checkout, and as root drop to the job user', async () => {
  const dir = userDir();
  writeFileSync(join(dir, 'env'), `BACKUP_ROOT=${join(dir, 'b')}\n`);
  await chownTree(dir);
  const env = { PATH: process.env.PATH!, L2_ENV_FILE: join(dir, 'env'), L2_RUN_AS: USER, NO_COLOR: '1' };
  const res = await execa(join(ROOT, 'scripts/alert.sh'), ['buffer-status', '--json'], { env, extendEnv: false, reject: false, all: true });
  expect(res.exitCode).toBe(0);
  expect(JSON.parse(res.stdout)).toMatchObject({ count: 0 });
  const send = await execa(join(ROOT, 'scripts/alert.sh'), ['send', '--level', 'info', '--title', 't', 'm'], { env, extendEnv: false, reject: false, all: true });
  expect(send.exitCode).toBe(0);
  const whoami = await execa(join(ROOT, 'scripts/backup.sh'), ['config', '--json'], { env, extendEnv: false, reject: false });
  expect(whoami.exitCode).toBe(0);
  const bad = await execa(join(ROOT, 'scripts/health-monitor.sh'), ['bogus'], { env, extendEnv: false, reject: false, all: true });
  expect(bad.exitCode).toBe(2);
});

test('install-crontab.sh adds a marked block, keeps other lines, is idempotent, and removes cleanly', async () => {
  const mine = '# my own job\n15 4 * * * /usr/bin/true\n';
  await execa('crontab', ['-u', USER, '-'], { input: mine });
  const script = join(ROOT, 'scripts/install-crontab.sh');
  expect((await execa(script, ['--user', USER, '--env-file', '/etc/l2ops.env', '--log', '/var/log/l2ops.log'])).exitCode).toBe(0);
  const once = (await execa('crontab', ['-u', USER, '-l'])).stdout;
  expect((await execa(script, ['--user', USER, '--env-file', '/etc/l2ops.env', '--log', '/var/log/l2ops.log'])).exitCode).toBe(0);
  const twice = (await execa('crontab', ['-u', USER, '-l'])).stdout;
  expect(twice).toBe(once);
  expect(once.startsWith(mine.trim())).toBe(true);
  expect(once).toContain(`L2_APP=${join(ROOT, 'scripts')}`);
  expect(once).toContain('L2_ENV_FILE=/etc/l2ops.env');
  expect(once.match(/# BEGIN l2ops/g)).toHaveLength(1);
  expect(parseCrontab(once).jobs).toHaveLength(4);
  await execa(script, ['--user', USER, '--remove']);
  expect((await execa('crontab', ['-u', USER, '-l'])).stdout.trim()).toBe(mine.trim());
});

test('shell scripts pass shellcheck; the Dockerfile copies only files that exist and runs as its user', async () => {
  const scripts = ['l2ops-exec.sh', 'backup.sh', 'alert.sh', 'health-monitor.sh', 'entrypoint.sh', 'crontab-shim.sh', 'install-crontab.sh'].map((s) => join(ROOT, 'scripts', s));
  const sc = await execa('shellcheck', scripts, { reject: false, all: true });
  expect(sc.all).toBe('');
  const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  for (const m of docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(/\s+/)) expect(existsSync(join(ROOT, src))).toBe(true);
  }
  expect(docker).toMatch(/useradd .*l2ops/);
  expect(docker).toMatch(/crontab -u l2ops \/app\/crontab/);
  expect(docker).toMatch(/^FROM node:24-/m);
  expect(docker).toMatch(/ENTRYPOINT \["\/app\/entrypoint.sh"\]/);
});

test('the real cron daemon runs a job for the non-root user', async () => {
  const dir = userDir();
  writeFileSync(join(dir, 'env'), `BACKUP_ROOT=${join(dir, 'b')}\n`);
  await chownTree(dir);
  const out = join(dir, 'ran.log');
  const tab = [
    'SHELL=/bin/sh',
    'PATH=/usr/local/bin:/usr/bin:/bin',
    `L2_APP=${join(ROOT, 'scripts')}`,
    `L2_ENV_FILE=${join(dir, 'env')}`,
    `* * * * * "$L2_APP/alert.sh" send --level info --title cron-ran "from cron" >> ${out} 2>&1`,
    '',
  ].join('\n');
  await execa('crontab', ['-u', USER, '-'], { input: tab });
  // The machine's cron daemon if one runs, else our own. Another test run on a shared machine may
  // stop the daemon it started while we wait, so check on every poll and start ours if none is left.
  let daemon: ReturnType<typeof execa> | undefined;
  const cronRunning = () => (daemon !== undefined && daemon.exitCode === null) || execaSync('pgrep', ['-x', 'cron'], { reject: false }).exitCode === 0;
  let looked = 0;
  const ensureCron = () => {
    if (Date.now() - looked < 2000) return;
    looked = Date.now();
    if (!cronRunning()) daemon = tracked(execa('cron', ['-f'], { reject: false }));
  };
  try {
    // Cron starts jobs on the minute; on a busy machine the job itself may take a while.
    await waitFor('the cron job to write its ALERT line', () => {
      ensureCron();
      return existsSync(out) && readFileSync(out, 'utf8').includes('ALERT');
    }, 240_000);
    expect(readFileSync(out, 'utf8')).toMatch(/ALERT l2alert: \[info\] cron-ran: from cron/);
  } finally {
    daemon?.kill();
    await daemon;
    await execa('crontab', ['-u', USER, '-r'], { reject: false });
  }
}, 300_000);
