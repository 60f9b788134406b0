#!/usr/bin/env node
/**
 * `npm run demo`: the main job on an embedded default, on this machine, nothing to configure.
 * Builds a demo L2 Dash data tree, starts a local S3 server (scripts/dev-s3-server.cjs) and a
 * local webhook sink that checks signatures and prints what it receives, then runs the
 * nightly backup twice (the second is incremental), a restore from the remote, the health
 * checks and an alert test with the real binaries. Everything lives under .demo/.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import http from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { verifyWebhook } from '../dist/alert/verify.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const demo = join(repo, '.demo');
rmSync(demo, { recursive: true, force: true });
const data = join(demo, 'data');
for (const d of ['models', 'logs/2025/10', 'reports', 'configs/guardrails']) mkdirSync(join(data, d), { recursive: true });
writeFileSync(join(data, 'models/model.bin'), randomBytes(8 * 1024 * 1024));
for (let i = 0; i < 200; i++) writeFileSync(join(data, `logs/2025/10/fills-${i}.log`), `fill ${i}\n`.repeat(100));
writeFileSync(join(data, 'reports/daily.csv'), 'date,pnl\n2025-10-03,12.5\n');
writeFileSync(join(data, 'configs/guardrails/limits.yaml'), 'max_position: 10\n');

const secret = 'demo-hmac-secret';
const sink = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    if (req.url === '/health') return res.end('ok');
    const v = verifyWebhook({ secret, rawBody: body, timestamp: req.headers['x-l2-timestamp'], signature: req.headers['x-l2-signature'] });
    console.log(`\n  [webhook sink] ${v.ok ? 'signature OK' : 'REJECTED: ' + v.reason} — ${JSON.parse(body).text.split('\n')[0]}`);
    res.writeHead(v.ok ? 200 : 401).end();
  });
});
await new Promise((r) => sink.listen(0, '127.0.0.1', r));
const sinkUrl = `http://127.0.0.1:${sink.address().port}`;

const s3port = await new Promise((r) => {
  const s = http.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => r(p));
  });
});
mkdirSync(join(demo, 's3'));
const s3 = spawn(process.execPath, ['--openssl-legacy-provider', join(repo, 'scripts/dev-s3-server.cjs'), String(s3port), join(demo, 's3'), 'l2trading-staging'], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => s3.stdout.once('data', r));

const envFile = join(demo, '.env');
writeFileSync(
  envFile,
  [
    `BACKUP_ROOT=${join(demo, 'backups')}`,
    `BACKUP_SOURCES=models=${data}/models,logs=${data}/logs,reports=${data}/reports,configs=${data}/configs`,
    'BACKUP_BUCKET=s3://l2trading-staging',
    `S3_ENDPOINT=http://127.0.0.1:${s3port}`,
    'S3_ACCESS_KEY_ID=S3RVER',
    'S3_SECRET_ACCESS_KEY=S3RVER',
    `ALERT_WEBHOOK_URL=${sinkUrl}/hook`,
    `ALERT_WEBHOOK_SECRET=${secret}`,
    `HEALTH_ENDPOINTS=sink=${sinkUrl}/health`,
    '',
  ].join('\n'),
);
mkdirSync(join(demo, 'backups'));

const env = { ...process.env, L2_ENV_FILE: envFile };
const step = (title, program, args) =>
  new Promise((resolve) => {
    console.log(`\n$ ${program} ${args.join(' ')}    # ${title}`);
    const p = spawn(process.execPath, [join(repo, 'bin', `${program}.js`), ...args], { env, stdio: 'inherit' });
    p.on('exit', (code) => resolve(code));
  });

let failed = 0;
const expect = (code, want) => {
  if (code !== want) failed++;
};
expect(await step('first nightly backup, uploaded to the local S3 server', 'l2backup', ['nightly']), 0);
appendFileSync(join(data, 'logs/2025/10/fills-1.log'), 'one more fill\n');
expect(await step('second nightly: unchanged files hard-linked and copied server-side', 'l2backup', ['nightly']), 0);
expect(await step('status', 'l2backup', ['status']), 0);
expect(await step('restore the models from the remote into .demo/restored, hash-checked', 'l2backup', ['restore', 'latest', '--from', 'remote', '--only', 'models', '--target', join(demo, 'restored')]), 0);
expect(await step('health checks (HTTP endpoint, backup age, alert buffer)', 'l2health', ['once']), 0);
expect(await step('alert test through the signed webhook', 'l2alert', ['test']), 0);

s3.kill();
sink.close();
console.log(`\nDemo ${failed ? `finished with ${failed} unexpected result(s)` : 'done'}. Look around: ${demo} (backups/, s3/, .env).`);
try {
  execFileSync('ls', ['-la', join(demo, 'backups')], { stdio: 'inherit' });
} catch {}
process.exit(failed ? 1 : 0);
