/**
 * compose.yaml under podman-compose (Debian's), as far as podman-compose goes: the project
 * l2-dash gets the volume l2-dash_backups, the service cron starts from the image with the
 * restart policy and stop grace period, the runbook's `docker compose exec cron ...` and
 * `docker compose logs cron | grep ALERT` work through it, and `down` stops it cleanly.
 * Reuses the image the runbook suite builds (same tag); builds it if missing.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { ROOT } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { buildImage, IMAGE, podman, podmanEnv, podmanUnavailable, until } from './podman.js';

function hasCompose(): boolean {
  try {
    return execaSync('podman-compose', ['--version'], { env: podmanEnv }).exitCode === 0;
  } catch {
    return false;
  }
}
const why = podmanUnavailable() ?? (hasCompose() ? undefined : 'podman-compose is not installed (apt-get install podman-compose; .ci/run does this)');
if (why && process.env.CI) {
  test('podman-compose runs here (required in CI)', () => {
    throw new Error(`the compose suite cannot run: ${why}`);
  });
} else if (why) {
  console.warn(`\n!!!!!!!! COMPOSE SUITE SKIPPED: ${why} !!!!!!!!\n`);
}
const describeIf = why ? describe.skip : describe;

const VOLUME = 'l2-dash_backups';
const TEST_LABEL = 'l2ops-test=compose';

describeIf('compose.yaml with podman-compose', () => {
  let work = '';
  const compose = (...args: string[]) =>
    execa('podman-compose', ['-p', 'l2-dash', ...args], {
      cwd: work,
      env: { ...podmanEnv, L2OPS_DIR: ROOT, L2OPS_IMAGE: IMAGE },
      reject: false,
      all: true,
      timeout: 600_000,
    });

  beforeAll(async () => {
    if ((await podman(['image', 'exists', IMAGE])).exitCode !== 0) await buildImage();
    if ((await podman(['volume', 'exists', VOLUME])).exitCode === 0) {
      const labels = (await podman(['volume', 'inspect', '--format', '{{json .Labels}}', VOLUME])).stdout;
      if (!labels.includes('l2ops-test')) throw new Error(`volume ${VOLUME} exists and is not a test's: remove it or run the suite elsewhere`);
      await podman(['volume', 'rm', '--force', VOLUME]);
    }
    work = mkdtempSync('/tmp/l2compose-');
    chmodSync(work, 0o755);
    const { data } = makeTree(work);
    mkdirSync(join(work, 'ml-service'));
    await execa('mv', [join(data, 'models'), join(work, 'ml-service/models')]);
    writeFileSync(join(work, '.env'), 'HEALTH_ENDPOINTS=\n');
    // Dropped into the L2 Dash folder, as an operator would: relative paths are the folder's.
    copyFileSync(join(ROOT, 'compose.yaml'), join(work, 'compose.yaml'));
    // Labelled first, so a crashed run's volume is known as a test's; compose reuses it.
    await podman(['volume', 'create', '--label', TEST_LABEL, VOLUME]);
  }, 2_400_000);

  afterAll(async () => {
    if (!work) return;
    await compose('down', '-t', '30');
    await podman(['volume', 'rm', '--force', VOLUME]);
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  test('up -d starts service cron on the l2-dash_backups volume, with restart policy and stop grace period', async () => {
    const up = await compose('up', '-d', '--no-build');
    expect([up.exitCode, up.all]).toEqual([0, expect.any(String)]);
    const ids = (await podman(['ps', '--quiet', '--filter', 'label=io.podman.compose.project=l2-dash'])).stdout.split('\n').filter(Boolean);
    expect(ids).toHaveLength(1);
    const inspect = JSON.parse((await podman(['inspect', ids[0]!])).stdout)[0];
    expect(inspect.Config.Labels['com.docker.compose.service']).toBe('cron');
    expect(inspect.HostConfig.RestartPolicy.Name).toBe('unless-stopped');
    // podman-compose 1.0.3 neither passes stop_grace_period on (its containers get podman's
    // 10 s) nor has `config`; docker compose does both. The file says 30 s:
    expect(readFileSync(join(work, 'compose.yaml'), 'utf8')).toMatch(/^ {4}stop_grace_period: 30s$/m);
    const mounts = Object.fromEntries(inspect.Mounts.map((m: { Destination: string; Name?: string; Source: string }) => [m.Destination, m.Name || m.Source]));
    expect(mounts).toMatchObject({
      '/backups': VOLUME,
      '/app/.env': join(work, '.env'),
      '/data/models': join(work, 'ml-service/models'),
      '/data/logs': join(work, 'data/logs'),
      '/data/reports': join(work, 'data/reports'),
      '/data/configs': join(work, 'data/configs'),
    });
    await until('cron to start', async () => (await compose('logs', 'cron')).all.includes('cron starting'));
  }, 300_000);

  test('the runbook through podman-compose: exec cron /app/backup.sh nightly, logs cron | grep ALERT, crontab -l', async () => {
    const nightly = await compose('exec', '-T', 'cron', '/app/backup.sh', 'nightly');
    expect([nightly.exitCode, nightly.all]).toEqual([0, expect.stringMatching(/nightly \d{8}-\d{6}: \d+ files/)]);
    const status = await compose('exec', '-T', 'cron', '/app/backup.sh');
    expect(status.exitCode).toBe(0);
    const logs = await execa('bash', ['-c', 'podman-compose -p l2-dash logs cron | grep ALERT'], { cwd: work, env: { ...podmanEnv, L2OPS_DIR: ROOT, L2OPS_IMAGE: IMAGE }, reject: false, all: true });
    expect(logs.stdout).toMatch(/ALERT l2backup: \[info\] backup nightly ok/);
    const tab = await compose('exec', '-T', 'cron', 'crontab', '-l');
    expect(tab.stdout).toContain('"$L2_APP/backup.sh" nightly');
  }, 300_000);

  test('down stops the service cleanly and keeps the volume', async () => {
    const down = await compose('down', '-t', '30');
    expect(down.exitCode).toBe(0);
    expect((await podman(['ps', '-a', '--quiet', '--filter', 'label=io.podman.compose.project=l2-dash'])).stdout).toBe('');
    expect((await podman(['volume', 'exists', VOLUME])).exitCode).toBe(0);
  }, 300_000);
});
