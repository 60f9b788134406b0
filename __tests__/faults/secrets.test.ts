/**
 * Secrets: every command runs with known secret values configured (S3 keys, webhook secret,
 * a webhook URL token, a health header token, a ping URL token); stdout, stderr, state files,
 * manifests, snapshots (the redacted env copy aside, checked separately) and the webhook
 * payloads are searched for them: zero hits. Also: .l2/ is private to its owner.
 */
import { readdirSync, readFileSync, lstatSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { startReceiver } from '../helpers/receiver.js';
import { startS3 } from '../helpers/s3.js';

function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...allFiles(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

test('no secret value appears anywhere but as a placeholder', async () => {
  const webhookSecret = 'whsec-7f3a9c1e5b2d';
  const token = 'tok-9d8c7b6a5f4e';
  const headerToken = 'hdr-1a2b3c4d5e6f';
  const pingToken = 'ping-0f9e8d7c6b5a';
  const hook = await startReceiver(webhookSecret);
  const s3 = await startS3();
  try {
    const sb = sandbox();
    const { sources } = makeTree(sb.dir);
    const healthFile = join(sb.dir, 'health.json');
    writeFileSync(healthFile, JSON.stringify({ targets: [{ name: 'api', url: `http://127.0.0.1:${hook.port}/health`, headers: { authorization: `Bearer ${headerToken}` } }] }));
    // Configuration only in the env file, as cron sees it.
    writeFileSync(
      sb.envFile,
      [
        `BACKUP_SOURCES=${sources}`,
        `BACKUP_BUCKET=s3://${s3.bucket}/secrets`,
        `S3_ENDPOINT=${s3.endpoint}`,
        'S3_ACCESS_KEY_ID=S3RVER',
        'S3_SECRET_ACCESS_KEY=S3RVER',
        `ALERT_WEBHOOK_URL=${hook.url}?token=${token}`,
        `ALERT_WEBHOOK_SECRET=${webhookSecret}`,
        `HEALTH_CONFIG=${healthFile}`,
        `HEALTHCHECK_PING_URL=http://127.0.0.1:${hook.port}/ping/${pingToken}`,
        '',
      ].join('\n'),
    );
    const secrets = [webhookSecret, token, headerToken, pingToken];
    const runs = [
      ['l2backup', ['nightly']],
      ['l2backup', ['status', '--json']],
      ['l2backup', ['config']],
      ['l2backup', ['config', '--json']],
      ['l2backup', ['list', '--remote']],
      ['l2backup', ['verify', '--remote']],
      ['l2alert', ['test']],
      ['l2alert', ['config', '--json']],
      ['l2alert', ['buffer-status', '--json']],
      ['l2health', ['once', '--json']],
      ['l2health', ['status', '--json']],
      ['l2health', ['config', '--json']],
    ] as const;
    let text = '';
    for (const [program, args] of runs) {
      const res = await run(program, [...args], sb.env);
      text += `${res.stdout}\n${res.stderr}\n`;
    }
    text += hook.received.map((r) => r.raw + JSON.stringify(r.headers)).join('\n');
    const envCopies: string[] = [];
    for (const file of [...allFiles(sb.root), ...allFiles(s3.dir)]) {
      if (file.endsWith('/.env.backup') || file.endsWith('/.env.backup._S3rver_object')) {
        envCopies.push(readFileSync(file, 'utf8'));
        continue;
      }
      const raw = readFileSync(file);
      text += file.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    }
    for (const s of secrets) expect(text.includes(s) ? s : 'absent').toBe('absent');
    expect(envCopies.length).toBeGreaterThanOrEqual(2); // local snapshot and its remote copy
    for (const copy of envCopies) {
      for (const s of secrets) expect(copy.includes(s) ? s : 'absent').toBe('absent');
      expect(copy).toContain('ALERT_WEBHOOK_SECRET="REDACTED-set-ALERT_WEBHOOK_SECRET"');
      expect(copy).toContain(`BACKUP_BUCKET=s3://${s3.bucket}/secrets`);
    }
    // State is private: the folder 0700, every file in it 0600.
    expect(statSync(join(sb.root, '.l2')).mode & 0o777).toBe(0o700);
    for (const f of allFiles(join(sb.root, '.l2'))) expect([f, statSync(f).mode & 0o077]).toEqual([f, 0]);
  } finally {
    await hook.close();
    await s3.stop();
  }
});
