/**
 * The cron container as the runbook uses it, under a real OCI engine (podman with runc).
 * Builds the image from this tree on the local Node.js base (scripts/container-base.sh), starts
 * it on the host network with a data tree, an env file, a webhook receiver, health targets and
 * an S3 server on 127.0.0.1, then runs the runbook's commands literally (`docker compose exec
 * cron` is `podman exec <container>`, `docker run ... alpine` is a throwaway container of the
 * same image). Run by `npm run test:container` (CI runs it after `npm test`).
 * Skips with a loud message only where podman cannot run at all, never in CI.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTargets, type Targets } from '../helpers/targets.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import http from 'node:http';
import { listenLocal, passThrough } from '../helpers/listen.js';
import { buildImage, IMAGE, podman, podmanUnavailable, shell, sizeOverBase, until } from './podman.js';

const unavailable = podmanUnavailable();
if (unavailable && process.env.CI) {
  // In CI the suite must run: fail loudly instead of skipping.
  test('podman runs containers on this machine (required in CI)', () => {
    throw new Error(`the container suite cannot run: ${unavailable}`);
  });
} else if (unavailable) {
  console.warn(`\n!!!!!!!! CONTAINER SUITE SKIPPED: ${unavailable} !!!!!!!!\n!!!!!!!! the image and the runbook inside it were NOT tested !!!!!!!!\n`);
}
const describeIf = unavailable ? describe.skip : describe;

const SECRET = 'whsec-container-test-0123456789';
const NAME = `l2ops-test-cron-${process.pid}`;
const VOLUME = 'l2-dash_backups';
const TEST_LABEL = 'l2ops-test=runbook';

/** A pass-through proxy to S3 that, while `holding`, keeps requests unanswered (no timers). */
interface HoldProxy {
  url: string;
  holding: boolean;
  held: number;
  close(): Promise<void>;
}

async function startHoldProxy(upstream: string): Promise<HoldProxy> {
  const target = new URL(upstream);
  const p: HoldProxy = { url: '', holding: false, held: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    if (p.holding) {
      p.held++;
      return;
    }
    passThrough(req, res, target);
  });
  const listening = await listenLocal(server);
  p.url = listening.url;
  p.close = listening.close;
  return p;
}

describeIf('the cron container and the runbook', () => {
  let work = '';
  let receiver: Receiver;
  let targets: Targets;
  let s3: TestS3;
  let proxy: HoldProxy;
  let base = '';
  const run = (line: string) => shell(line, work, { TIMESTAMP: '' });
  /** `docker compose exec cron ARGS`, as root like docker's exec. */
  const exec = (...args: string[]) => podman(['exec', NAME, ...args]);
  const logs = async () => (await podman(['logs', NAME])).all;
  const volumePath = async () => (await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', VOLUME])).stdout.trim();

  async function startContainer(): Promise<void> {
    const res = await podman([
      'run', '--detach', '--name', NAME, '--network', 'host', '--label', TEST_LABEL,
      '--volume', `${VOLUME}:/backups`,
      '--volume', `${join(work, '.env')}:/app/.env:ro`,
      '--volume', `${join(work, 'ml-service/models')}:/data/models`,
      '--volume', `${join(work, 'data/logs')}:/data/logs`,
      '--volume', `${join(work, 'data/reports')}:/data/reports`,
      '--volume', `${join(work, 'data/configs')}:/data/configs`,
      '--volume', `${join(work, 'crontab.test')}:/app/crontab.test:ro`,
      '--env', 'L2_CRONTAB=/app/crontab.test',
      IMAGE,
    ]);
    expect(res.all).toMatch(/^[0-9a-f]{64}$/m);
    await until('the entrypoint to start cron', async () => (await logs()).includes('cron starting'));
  }

  async function removeLeftovers(): Promise<void> {
    for (const id of (await podman(['ps', '-a', '--quiet', '--filter', `label=${TEST_LABEL}`])).stdout.split('\n').filter(Boolean)) {
      await podman(['rm', '--force', '--time', '0', id]);
    }
    if ((await podman(['volume', 'exists', VOLUME])).exitCode === 0) {
      const labels = (await podman(['volume', 'inspect', '--format', '{{json .Labels}}', VOLUME])).stdout;
      if (!labels.includes('l2ops-test')) throw new Error(`volume ${VOLUME} exists and is not this suite's: remove it or run the suite elsewhere`);
      await podman(['volume', 'rm', '--force', VOLUME]);
    }
  }

  beforeAll(async () => {
    const built = await buildImage();
    base = built.base;
    await removeLeftovers();
    work = mkdtempSync('/tmp/l2ctr-');
    chmodSync(work, 0o755);
    // The L2 Dash folder: .env, ml-service/models, data/{logs,reports,configs} (compose.yaml's mounts).
    const { data } = makeTree(work);
    mkdirSync(join(work, 'ml-service'));
    renameSync(join(data, 'models'), join(work, 'ml-service/models'));
    mkdirSync(join(work, 'pristine'));
    cpSync(join(work, 'ml-service/models'), join(work, 'pristine/models'), { recursive: true, verbatimSymlinks: true });
    for (const s of ['logs', 'reports', 'configs']) cpSync(join(data, s), join(work, 'pristine', s), { recursive: true, verbatimSymlinks: true });
    receiver = await startReceiver(SECRET);
    targets = await startTargets();
    s3 = await startS3('l2trading-staging');
    proxy = await startHoldProxy(s3.endpoint);
    // Configuration only in the env file: the cron jobs see nothing else.
    writeFileSync(
      join(work, '.env'),
      [
        `ALERT_WEBHOOK_URL=${receiver.url}`,
        `ALERT_WEBHOOK_SECRET=${SECRET}`,
        `HEALTH_ENDPOINTS=algo=${targets.base}/health`,
        `HEALTH_SSE_STREAMS=l2=${targets.base}/sse/heartbeat`,
        `BACKUP_BUCKET=s3://${s3.bucket}`,
        `S3_ENDPOINT=${proxy.url}`,
        'S3_ACCESS_KEY_ID=S3RVER',
        'S3_SECRET_ACCESS_KEY=S3RVER',
        'S3_TIMEOUT_MS=600000',
        '',
      ].join('\n'),
    );
    // The shipped schedule plus a job every minute, through L2_CRONTAB (no rebuild).
    writeFileSync(
      join(work, 'crontab.test'),
      readFileSync(join(ROOT, 'crontab'), 'utf8') + '* * * * * "$L2_APP/alert.sh" send --level info --title cron-tick "sent by cron" >> "$L2_LOG" 2>&1\n',
    );
    await podman(['volume', 'create', '--label', TEST_LABEL, VOLUME]);
    await startContainer();
  }, 2_400_000);

  afterAll(async () => {
    if (work) {
      await podman(['rm', '--force', '--time', '0', NAME]);
      await podman(['volume', 'rm', '--force', VOLUME]);
      rmSync(work, { recursive: true, force: true });
    }
    await proxy?.close();
    await s3?.stop();
    if (s3) rmSync(s3.dir, { recursive: true, force: true });
    await targets?.close();
    await receiver?.close();
  }, 120_000);

  test('the runtime stage adds at most 30 MB over its base and carries no node_modules', async () => {
    const bytes = await sizeOverBase(IMAGE, base);
    console.log(`image ${IMAGE}: ${(bytes / 1e6).toFixed(1)} MB of layers over ${base}`);
    expect(bytes).toBeLessThanOrEqual(30e6);
    const find = await exec('find', '/app', '-name', 'node_modules');
    expect(find).toMatchObject({ exitCode: 0, stdout: '' });
  });

  test('crontab -l shows the installed schedule; cat /tmp/alerts_buffer.jsonl succeeds with nothing buffered', async () => {
    const tab = await run(`podman exec ${NAME} crontab -l`);
    expect(tab.exitCode).toBe(0);
    expect(tab.stdout).toContain('0 2 * * * "$L2_APP/backup.sh" nightly');
    expect(tab.stdout).toContain('cron-tick');
    const buffer = await run(`podman exec ${NAME} cat /tmp/alerts_buffer.jsonl`);
    expect(buffer).toMatchObject({ exitCode: 0, stdout: '' });
  });

  test('backup.sh nightly, snapshot, status and emergency-pre-restore; every file on the volume is l2ops\'s', async () => {
    const nightly = await run(`podman exec ${NAME} /app/backup.sh nightly`);
    expect([nightly.exitCode, nightly.all]).toEqual([0, expect.stringMatching(/nightly \d{8}-\d{6}: \d+ files/)]);
    expect(nightly.all).toMatch(/remote: uploaded/);
    const snapshot = await run(`podman exec ${NAME} /app/backup.sh snapshot`);
    expect([snapshot.exitCode, snapshot.all]).toEqual([0, expect.stringMatching(/snapshot \d{8}-\d{6}/)]);
    const status = await run(`podman exec ${NAME} /app/backup.sh`);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toMatch(/next nightly: \d{4}-\d\d-\d\d 02:00 UTC/);
    const pre = await run(`podman exec ${NAME} /app/backup.sh emergency-pre-restore`);
    expect(pre.exitCode).toBe(0);
    expect((await exec('ls', '/backups/.pre-restore')).stdout.trim()).toMatch(/^\d{8}-\d{6}$/);
    const notOurs = await exec('find', '/backups', '!', '-user', 'l2ops', '-o', '!', '-group', 'l2ops');
    expect(notOurs).toMatchObject({ exitCode: 0, stdout: '' });
    expect(receiver.received.some((r) => r.verified && /backup nightly ok/.test(r.body.text))).toBe(true);
  }, 300_000);

  test('alert.sh test delivers a signed alert; buffer-status counts none', async () => {
    const t = await run(`podman exec ${NAME} /app/alert.sh test`);
    expect(t.exitCode).toBe(0);
    expect(receiver.received.some((r) => r.verified && /l2alert test/.test(r.body.text))).toBe(true);
    const b = await run(`podman exec ${NAME} /app/alert.sh buffer-status`);
    expect(b.exitCode).toBe(0);
    expect(b.stdout).toMatch(/\b0\b/);
  });

  test('health-monitor.sh once, status, health-only and sse-only see the targets up', async () => {
    for (const cmd of ['once', 'status', 'health-only', 'sse-only']) {
      const res = await run(`podman exec ${NAME} /app/health-monitor.sh ${cmd}`);
      expect([cmd, res.exitCode]).toEqual([cmd, 0]);
      if (cmd !== 'sse-only') expect([cmd, res.all]).toEqual([cmd, expect.stringMatching(/algo/)]);
      if (cmd !== 'health-only' && cmd !== 'status') expect([cmd, res.all]).toEqual([cmd, expect.stringMatching(/\bl2\b/)]);
    }
  }, 120_000);

  test("manual runs reach the container log once each; logs | grep ALERT shows the alerts", async () => {
    const grep = await run(`podman logs ${NAME} 2>&1 | grep ALERT`);
    expect(grep.exitCode).toBe(0);
    expect(grep.stdout).toMatch(/ALERT l2backup: \[info\] backup nightly ok/);
    expect(grep.stdout).toMatch(/ALERT l2alert: \[info\] l2alert test/);
    const lines = (await logs()).split('\n').filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
    expect(lines.filter((l) => /backup nightly ok/.test(l))).toHaveLength(1);
    expect(lines.length).toBe(new Set(lines).size);
    expect(lines.join('\n')).not.toContain(String.fromCharCode(27));
  });

  test('a cron job runs as l2ops with the env file configuration, and its lines reach the log once', async () => {
    await until('cron to run the every-minute job', () => receiver.received.some((r) => /cron-tick/.test(r.body.text)), 150_000, 1000);
    const tick = receiver.received.find((r) => /cron-tick/.test(r.body.text))!;
    expect(tick.verified).toBe(true);
    await until('the cron job line in the container log', async () => /ALERT l2alert: \[info\] cron-tick: sent by cron/.test(await logs()), 30_000);
    const lines = (await logs()).split('\n').filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
    expect(lines.length).toBe(new Set(lines).size);
    const notOurs = await exec('find', '/backups', '!', '-user', 'l2ops');
    expect(notOurs).toMatchObject({ exitCode: 0, stdout: '' });
    const health = await podman(['healthcheck', 'run', NAME]);
    expect(health.exitCode).toBe(0);
  }, 200_000);

  test("the image's health check: healthy now; unhealthy with a reason when the health job has been silent too long", async () => {
    const ok = await exec('node', '/app/healthcheck.mjs');
    expect([ok.exitCode, ok.stdout]).toEqual([0, expect.stringMatching(/^healthy: cron running; last backup ok at /)]);
    const silent = await podman(['exec', '--env', 'L2_HEALTHCHECK_SILENCE_MINUTES=0.0001', NAME, 'node', '/app/healthcheck.mjs']);
    expect([silent.exitCode, silent.stdout]).toEqual([1, expect.stringMatching(/^unhealthy: no health check has run for over 0.0001 minutes/)]);
  });

  test('podman stop during a nightly: the job ends cleanly, the lock is released, no partial snapshot; the next nightly and verify --all pass', async () => {
    // New data, and an S3 endpoint that holds the upload: the nightly is mid-run when stopped.
    writeFileSync(join(work, 'ml-service/models/new-model.bin'), Buffer.alloc(2_000_000, 7));
    proxy.holding = true;
    const nightly = run(`podman exec ${NAME} /app/backup.sh nightly`);
    await until('the nightly to reach the S3 upload', () => proxy.held > 0, 120_000);
    const t0 = Date.now();
    const stop = await podman(['stop', '--time', '30', NAME]);
    console.log(`podman stop during a nightly returned after ${Date.now() - t0} ms`);
    expect(stop.exitCode).toBe(0);
    const ended = await nightly;
    expect(ended.exitCode).not.toBe(0);
    const state = await podman(['inspect', '--format', '{{.State.ExitCode}}', NAME]);
    expect(state.stdout.trim()).toBe('0'); // the entrypoint exited by itself, not SIGKILLed
    const log = await logs();
    expect(log).toContain('entrypoint: all jobs ended; stopped');
    proxy.holding = false;
    // Nothing half-built is visible on the volume.
    const vol = await volumePath();
    const visible = (await shell(`ls ${vol}`, work)).stdout.split('\n').filter(Boolean);
    for (const name of visible) {
      expect(name).toMatch(/^\d{8}-\d{6}$/);
      expect(existsSync(join(vol, name, '.l2-manifest.json'))).toBe(true);
    }
    expect(await podman(['start', NAME])).toMatchObject({ exitCode: 0 });
    await until('cron to start again', async () => ((await logs()).match(/cron starting/g) ?? []).length >= 2);
    const status = await exec('/app/backup.sh', 'status', '--json');
    expect(status.exitCode).toBe(0);
    expect(JSON.parse(status.stdout).lock).toBeNull();
    const again = await exec('/app/backup.sh', 'nightly');
    expect([again.exitCode, again.all]).toEqual([0, expect.stringMatching(/remote: uploaded/)]);
    const verify = await exec('/app/backup.sh', 'verify', '--all');
    expect([verify.exitCode, verify.all]).toEqual([0, expect.any(String)]);
  }, 400_000);

  test('Scenario 2: list the backups, restore the models of one with a throwaway container', async () => {
    const list = await run(`podman run --rm -v l2-dash_backups:/data ${IMAGE} ls -la /data/`);
    expect(list.exitCode).toBe(0);
    const ids = [...list.stdout.matchAll(/ (\d{8}-\d{6})$/gm)].map((m) => m[1]!);
    expect(ids.length).toBeGreaterThanOrEqual(2);
    const timestamp = ids[0]!;
    rmSync(join(work, 'ml-service/models'), { recursive: true });
    mkdirSync(join(work, 'ml-service/models'));
    // The runbook's line: the glob is outside the quotes, so the HOST shell expands it, finds no
    // /backups there and passes a literal '*' to cp: it fails with alpine and with this image.
    const literal = await run(`TIMESTAMP="${timestamp}"
docker() { podman "$@"; }
docker run --rm \\
  -v l2-dash_backups:/backups \\
  -v $(pwd)/ml-service/models:/restore \\
  ${IMAGE} cp -r "/backups/$TIMESTAMP/models/"* /restore/`);
    expect(literal.exitCode).not.toBe(0);
    expect(literal.all).toMatch(/cannot stat '\/backups\/\d{8}-\d{6}\/models\/\*'/);
    // What works (README): the glob expanded inside the container.
    const fixed = await run(`TIMESTAMP="${timestamp}"
docker() { podman "$@"; }
docker run --rm \\
  -v l2-dash_backups:/backups \\
  -v $(pwd)/ml-service/models:/restore \\
  ${IMAGE} sh -c 'cp -r "/backups/$0/models/"* /restore/' "$TIMESTAMP"`);
    expect(fixed.exitCode).toBe(0);
    // The first snapshot was taken before new-model.bin was written.
    const diff = await run('diff -r pristine/models ml-service/models');
    expect([diff.exitCode, diff.all]).toEqual([0, '']);
  }, 300_000);

  test('Scenario 4: restore the configs only, then the env file from its backup', async () => {
    const latest = (await exec('sh', '-c', 'ls -t /backups/ | head -1')).stdout.trim();
    rmSync(join(work, 'data/configs'), { recursive: true });
    mkdirSync(join(work, 'data/configs'));
    const res = await run(`TIMESTAMP="${latest}"
podman run --rm \\
  -v l2-dash_backups:/backups \\
  -v $(pwd)/data/configs:/restore \\
  ${IMAGE} sh -c 'cp -r "/backups/$0/configs/"* /restore/' "$TIMESTAMP"`);
    expect(res.exitCode).toBe(0);
    const diff = await run(`diff -r ${await volumePath()}/${latest}/configs data/configs`);
    expect([diff.exitCode, diff.all]).toEqual([0, '']);
    expect((await run('diff -r -x envs pristine/configs data/configs')).exitCode).toBe(0);
    const env = await run('cp data/configs/envs/.env.backup .env.restored && cat .env.restored');
    expect(env.exitCode).toBe(0);
    expect(env.stdout).toContain(`ALERT_WEBHOOK_URL=`);
    expect(env.stdout).toContain(`HEALTH_ENDPOINTS=algo=${targets.base}/health`);
    expect(env.stdout).not.toContain(SECRET);
  }, 300_000);

  test('Scenario 3: emergency-pre-restore, down, restore the latest backup into data/, up', async () => {
    const pre = await run(`podman exec ${NAME} /app/backup.sh emergency-pre-restore`);
    expect(pre.exitCode).toBe(0);
    const latest = (await exec('sh', '-c', 'ls -t /backups/ | head -1')).stdout.trim();
    expect(latest).toMatch(/^\d{8}-\d{6}$/);
    expect((await podman(['stop', '--time', '30', NAME])).exitCode).toBe(0);
    rmSync(join(work, 'data'), { recursive: true });
    mkdirSync(join(work, 'data'));
    const res = await run(`podman run --rm \\
  -v l2-dash_backups:/backups \\
  -v $(pwd)/data:/restore \\
  ${IMAGE} sh -c 'LATEST=$(ls -t /backups/ | head -1); cp -r "/backups/$LATEST/"* /restore/'`);
    expect(res.exitCode).toBe(0);
    const vol = await volumePath();
    for (const s of ['models', 'logs', 'reports', 'configs']) {
      const diff = await run(`diff -r ${vol}/${latest}/${s} data/${s}`);
      expect([s, diff.exitCode, diff.all]).toEqual([s, 0, '']);
    }
    expect((await run('diff -r -x new-model.bin pristine/models data/models')).exitCode).toBe(0);
    expect((await podman(['start', NAME])).exitCode).toBe(0);
    await until('cron to start again', async () => ((await logs()).match(/cron starting/g) ?? []).length >= 3);
    const verify = await exec('/app/backup.sh', 'verify', '--all');
    expect(verify.exitCode).toBe(0);
    const notOurs = await exec('find', '/backups', '!', '-user', 'l2ops');
    expect(notOurs).toMatchObject({ exitCode: 0, stdout: '' });
  }, 300_000);
});
