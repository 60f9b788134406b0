/**
 * The schedule with the real Debian cron and crontab, outside a container: the crontab
 * installs for a non-root user and reads back, every job line runs the way cron runs it
 * (/bin/sh -c, cron's environment only, as that user, configuration only in the env file),
 * and the real cron daemon runs a job. Needs root and Debian's cron (.ci/run installs it).
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { ROOT } from './helpers/run.js';
import { makeTree } from './helpers/tree.js';
import { deadPort } from './helpers/receiver.js';
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
    ['0 4 1 * *', '"$L2_APP/backup.sh"', 'drill'],
  ]);
  expect(tab.jobs[3]!.command).toContain('drill --from remote');
  expect(tab.vars).toMatchObject({ SHELL: '/bin/sh', TZ: 'UTC', L2_ENV_FILE: '/app/.env' });
  const next = await nextRunFrom(CRONTAB, 'nightly', /backup\.sh"? nightly/, new Date('2025-10-03T21:00:00Z'));
  expect(next.next).toBe('2025-10-04T02:00:00.000Z');
  const cleanup = await nextRunFrom(CRONTAB, 'cleanup', /cleanup-logs/, new Date('2025-10-03T21:00:00Z'));
  expect(cleanup.next).toBe('2025-10-06T03:00:00.000Z');
  const drill = await nextRunFrom(CRONTAB, 'drill', /drill --from remote/, new Date('2025-10-03T21:00:00Z'));
  expect(drill.next).toBe('2025-11-01T04:00:00.000Z');
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
  // nightly ok; health once finds the target down (exit 1, as documented); cleanup ok; the
  // remote drill says there is no remote configured (exit 2)
  expect(codes).toEqual([0, 1, 0, 2]);
  const log = readFileSync(join(dir, 'cron.log'), 'utf8');
  expect(log).toMatch(/INFO {2}l2backup: nightly \d{8}-\d{6}: \d+ files/);
  expect(log).toMatch(/ALERT l2health: \[error\] self DOWN|self .*DOWN/);
  expect(log).toMatch(/deleted 0 log file\(s\)/);
  expect(log).toMatch(/ERROR l2backup: BACKUP_BUCKET is not set, so there is no remote to use/);
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
  const dir = userDir();
  const args = ['--user', USER, '--env-file', '/etc/l2ops.env', '--log', join(dir, 'l2ops.log'), '--backup-root', join(dir, 'b')];
  expect((await execa(script, args)).exitCode).toBe(0);
  const once = (await execa('crontab', ['-u', USER, '-l'])).stdout;
  expect((await execa(script, args)).exitCode).toBe(0);
  const twice = (await execa('crontab', ['-u', USER, '-l'])).stdout;
  expect(twice).toBe(once);
  expect(once.startsWith(mine.trim())).toBe(true);
  expect(once).toContain(`L2_APP=${join(ROOT, 'scripts')}`);
  expect(once).toContain('L2_ENV_FILE=/etc/l2ops.env');
  expect(once.match(/# BEGIN l2ops/g)).toHaveLength(1);
  expect(parseCrontab(once).jobs).toHaveLength(5);
  await execa(script, ['--user', USER, '--remove']);
  expect((await execa('crontab', ['-u', USER, '-l'])).stdout.trim()).toBe(mine.trim());
});

test('shell scripts pass shellcheck; the Dockerfile copies only files that exist and runs as its user', async () => {
  const scripts = ['l2ops-exec.sh', 'backup.sh', 'alert.sh', 'health-monitor.sh', 'entrypoint.sh', 'crontab-shim.sh', 'install-crontab.sh', 'container-base.sh'].map((s) => join(ROOT, 'scripts', s));
  const sc = await execa('shellcheck', scripts, { reject: false, all: true });
  expect(sc.all).toBe('');
  const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  for (const m of docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(/\s+/)) expect(existsSync(join(ROOT, src))).toBe(true);
  }
  expect(docker).toMatch(/useradd .*l2ops/);
  expect(docker).toMatch(/crontab -u l2ops \/app\/crontab/);
  // Production builds need no argument; both stages take the same base.
  expect(docker).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
  expect(docker.match(/^FROM \$\{NODE_IMAGE\}/gm)).toHaveLength(2);
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

/**
 * scripts/install-crontab.sh on a host without Docker, with its defaults: the job user can
 * write the default log, the runbook's /tmp/alerts_buffer.jsonl exists, --remove leaves no
 * empty crontab behind, --help prints help. (In this file: the tests share /var/log/l2ops.log,
 * /tmp/alerts_buffer.jsonl and /etc/tmpfiles.d/l2ops.conf with the install test above.)
 */
describe('host install with install-crontab.sh', () => {
  // One user per test process: two suites on one machine (a shared CI host) must not share it.
  const HOST_USER = `l2h-${process.pid}`;
  const SCRIPT = join(ROOT, 'scripts/install-crontab.sh');
  const LOG = '/var/log/l2ops.log';
  const LINK = '/tmp/alerts_buffer.jsonl';
  const TMPFILES = '/etc/tmpfiles.d/l2ops.conf';
  let dir = '';
  const existedBefore = { log: existsSync(LOG), link: existsSync(LINK) || isLink(LINK), tmpfiles: existsSync(TMPFILES) };

  function isLink(path: string): boolean {
    try {
      return lstatSync(path).isSymbolicLink();
    } catch {
      return false;
    }
  }

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the host install tests need root (CI runs as root): they create a user and install crontabs');
    if ((await execa('id', ['-u', HOST_USER], { reject: false })).exitCode !== 0) await execa('useradd', ['--create-home', '--shell', '/bin/sh', HOST_USER]);
    dir = mkdtempSync('/tmp/l2host-');
    chmodSync(dir, 0o755);
  });

  afterAll(async () => {
    await execa('crontab', ['-u', HOST_USER, '-r'], { reject: false });
    await execa('userdel', ['--remove', HOST_USER], { reject: false });
    if (!existedBefore.log) rmSync(LOG, { force: true });
    if (!existedBefore.link) rmSync(LINK, { force: true });
    if (!existedBefore.tmpfiles) rmSync(TMPFILES, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('--help prints the usage and nothing of the script', async () => {
    const res = await execa(SCRIPT, ['--help'], { all: true });
    expect(res.exitCode).toBe(0);
    expect(res.all).toMatch(/^Installs the l2ops schedule/);
    for (const opt of ['--user', '--env-file', '--log', '--backup-root', '--remove', '--print']) expect(res.all).toContain(opt);
    expect(res.all).not.toMatch(/set -eu|^here=/m);
    const bad = await execa(SCRIPT, ['--log'], { reject: false, all: true });
    expect([bad.exitCode, bad.all]).toEqual([2, 'install-crontab: --log needs a value; see --help']);
  });

  test('install with the default log: the job user can write it; /tmp/alerts_buffer.jsonl exists and reads empty', async () => {
    const root = join(dir, 'backups');
    const env = join(dir, 'env');
    // A webhook that refuses connections: the alert sent below stays in the buffer.
    writeFileSync(env, `BACKUP_ROOT=${root}\nALERT_WEBHOOK_URL=http://127.0.0.1:${await deadPort()}/hook\nALERT_TIMEOUT_MS=500\nALERT_BUDGET_MS=1000\n`);
    chmodSync(env, 0o644);
    const res = await execa(SCRIPT, ['--user', HOST_USER, '--env-file', env], { reject: false, all: true });
    expect([res.exitCode, res.all]).toEqual([0, `install-crontab: install done for ${HOST_USER}`]);
    const tab = (await execa('crontab', ['-u', HOST_USER, '-l'])).stdout;
    expect(tab).toContain(`L2_LOG=${LOG}`);
    const asUser = (...args: string[]) => execa('setpriv', ['--reuid', HOST_USER, '--regid', HOST_USER, '--init-groups', ...args], { reject: false, all: true });
    expect((await asUser('sh', '-c', `echo job line >> ${LOG}`)).exitCode).toBe(0);
    expect(readFileSync(LOG, 'utf8')).toContain('job line');
    // The runbook's `cat /tmp/alerts_buffer.jsonl`: exit 0 with nothing buffered.
    expect(readlinkSync(LINK)).toBe(join(root, '.l2/alerts_buffer.jsonl'));
    const cat = await execa('cat', [LINK], { reject: false, all: true });
    expect([cat.exitCode, cat.all]).toEqual([0, '']);
    // The jobs' alert buffer is the job user's.
    expect((await execa('stat', ['-c', '%U %a', join(root, '.l2/alerts_buffer.jsonl')])).stdout).toBe(`${HOST_USER} 600`);
    const send = await asUser('env', '-i', `PATH=${process.env.PATH}`, `L2_ENV_FILE=${env}`, 'NO_COLOR=1', join(ROOT, 'scripts/alert.sh'), 'send', '--level', 'warning', '--title', 'host', 'buffered here');
    expect(send.all).toMatch(/ALERT l2alert: \[warning\] host: buffered here/);
    expect(readFileSync(LINK, 'utf8')).toContain('buffered here');
    if (existsSync('/etc/tmpfiles.d')) expect(readFileSync(TMPFILES, 'utf8')).toBe(`L+ ${LINK} - - - - ${join(root, '.l2/alerts_buffer.jsonl')}\n`);
  });

  test('--remove of the only block leaves no crontab at all, not an empty one', async () => {
    const res = await execa(SCRIPT, ['--user', HOST_USER, '--remove'], { reject: false, all: true });
    expect(res.exitCode).toBe(0);
    const list = await execa('crontab', ['-u', HOST_USER, '-l'], { reject: false, all: true });
    expect(list.exitCode).not.toBe(0);
    expect(list.all).toMatch(/no crontab for/);
    expect(existsSync(TMPFILES)).toBe(false);
  });

  test('a job user who cannot write the log is told before anything is installed', async () => {
    const res = await execa('setpriv', ['--reuid', HOST_USER, '--regid', HOST_USER, '--init-groups', 'env', `HOME=${dir}`, SCRIPT, '--env-file', '/nonexistent', '--log', '/var/log/l2ops-nope/x.log'], { reject: false, all: true });
    expect(res.exitCode).toBe(2);
    expect(res.all).toBe(`install-crontab: ${HOST_USER} cannot write the log /var/log/l2ops-nope/x.log; pass --log FILE in a folder of yours, or run as root`);
    const list = await execa('crontab', ['-u', HOST_USER, '-l'], { reject: false });
    expect(list.exitCode).not.toBe(0);
  });
});
