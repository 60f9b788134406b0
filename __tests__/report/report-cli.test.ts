/**
 * The status page from the built programs: written after every run, never failing one, and
 * `l2backup report -o FILE` on demand, also on a copy of a volume whose sources and remote are gone.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox, modelsSandbox } from '../helpers/run.js';
import { deadPort, startReceiver } from '../helpers/receiver.js';
import { startTargets } from '../helpers/targets.js';

const pageOf = (root: string) => join(root, '.l2', 'report', 'index.html');

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

test('a nightly writes the page; it shows the run', async () => {
  const box = modelsSandbox();
  const res = await run('l2backup', ['nightly'], box.env);
  expect(res.exitCode).toBe(0);
  const html = readFileSync(pageOf(box.root), 'utf8');
  expect(html).toMatch(/^<!doctype html>/);
  expect(html).toContain('data-status="ok"');
  expect(statSync(pageOf(box.root)).mode & 0o777).toBe(0o600);
  expect(res.all).not.toMatch(/status page/);
  // The nightly's storage figures reach the page (issue 12's forecast, issue 13's picture).
  expect(html).not.toContain('Storage forecast: not available');
  expect(html).toMatch(/local stored<\/dt><dd>[\d.]+ [KMG]?i?B/);
  expect(html).toContain('local forecast (in 30 days)');
});

test('a read-only report folder: the nightly still succeeds, with one warning line', async () => {
  const box = modelsSandbox();
  const dir = join(box.root, '.l2', 'report');
  mkdirSync(dir, { recursive: true });
  await execa('mount', ['--bind', dir, dir]);
  cleanups.push(() => execa('umount', [dir]));
  await execa('mount', ['-o', 'remount,bind,ro', dir]);
  const res = await run('l2backup', ['nightly'], box.env);
  expect(res.exitCode).toBe(0);
  const warnings = res.all.split('\n').filter((l) => /status page/.test(l));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/WARN .*status page .*index\.html not written: .*read-only/);
  expect(existsSync(pageOf(box.root))).toBe(false);
  // ... and the run itself was recorded as a success.
  expect(JSON.parse(readFileSync(join(box.root, '.l2/backup/last-run.json'), 'utf8')).status).toBe('ok');
});

test('a symlink planted at the report folder is refused (a warning), never written through', async () => {
  const box = modelsSandbox();
  const elsewhere = join(box.dir, 'elsewhere');
  mkdirSync(elsewhere);
  mkdirSync(join(box.root, '.l2'), { recursive: true });
  symlinkSync(elsewhere, join(box.root, '.l2', 'report'));
  const res = await run('l2backup', ['nightly'], box.env);
  expect(res.exitCode).toBe(0);
  expect(res.all).toMatch(/WARN .*status page .* not written: .*symlink/);
  expect(existsSync(join(elsewhere, 'index.html'))).toBe(false);
});

test('l2health once and l2alert flush refresh the page too', async () => {
  const servers = await startTargets();
  cleanups.push(() => servers.close());
  const box = sandbox({ HEALTH_ENDPOINTS: `api=${servers.base}/health`, HEALTH_TIMEOUT_MS: '20000' });
  const res = await run('l2health', ['once'], box.env);
  expect([0, 1]).toContain(res.exitCode); // the backup check is down: nothing backed up here
  expect(readFileSync(pageOf(box.root), 'utf8')).toContain('data-target="api"');
  rmSync(pageOf(box.root));

  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  const dead = `http://127.0.0.1:${await deadPort()}/hook`;
  await run('l2alert', ['send', '--level', 'error', '--title', 'queued one', 'm'], { ...box.env, ALERT_WEBHOOK_URL: dead, ALERT_TIMEOUT_MS: '2000' });
  receiver.fallback = 503;
  const flush = await run('l2alert', ['flush'], { ...box.env, ALERT_WEBHOOK_URL: receiver.url });
  expect(flush.exitCode).toBe(1);
  expect(readFileSync(pageOf(box.root), 'utf8')).toContain('queued one');
});

test('report -o: bad targets are one usage line and exit 2; nothing is written', async () => {
  const box = sandbox();
  const cases: [string, RegExp][] = [
    ['', /-o is empty/],
    [join(box.dir, 'no', 'such', 'dir', 'p.html'), /the folder .* does not exist/],
    [box.dir, /is a folder/],
  ];
  for (const [o, msg] of cases) {
    const res = await run('l2backup', ['report', '-o', o], box.env);
    expect(res.exitCode).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(msg);
  }
  expect(existsSync(join(box.dir, 'no'))).toBe(false);
});

test('report -o on a copy of a volume from a broken host: sources gone, remote unreachable', async () => {
  const box = modelsSandbox();
  const nightly = await run('l2backup', ['nightly'], box.env);
  expect(nightly.exitCode).toBe(0);
  const copy = join(box.dir, 'copied-volume');
  cpSync(box.root, copy, { recursive: true });
  rmSync(box.models, { recursive: true });
  const out = join(box.dir, 'page.html');
  // The remote is a dead port with credentials in the URL: never contacted, never shown.
  const env = { ...box.env, BACKUP_ROOT: copy, BACKUP_BUCKET: 's3://l2trading/prod', S3_ENDPOINT: `http://127.0.0.1:${await deadPort()}`, S3_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', S3_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
  const res = await run('l2backup', ['report', '-o', out], env);
  expect(res.exitCode).toBe(0);
  expect(res.stdout).toMatch(/status page written: .*page\.html/);
  const html = readFileSync(out, 'utf8');
  expect(html).toContain(copy);
  expect(html).toContain('data-status="ok"');
  expect(html).toContain('s3://l2trading/prod/snapshots/');
  expect(html).not.toContain('wJalrXUtnFEMI');
  expect(html).not.toContain('AKIAIOSFODNN7EXAMPLE');
  expect(statSync(out).mode & 0o777).toBe(0o644);
  // '-' writes to stdout
  const stdout = await run('l2backup', ['report', '-o', '-'], env);
  expect(stdout.exitCode).toBe(0);
  expect(stdout.stdout).toMatch(/^<!doctype html>[\s\S]*<\/html>$/); // (execa drops the final newline)
});
