/**
 * Configuration and secrets end to end (issue 10, section 4): the built programs read the env
 * file as docker compose does, snapshot a redacted copy of it, and never print URL credentials.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { withTargets } from '../helpers/targets.js';
import { withReceiver } from '../helpers/receiver.js';

const t = withTargets();
const hook = withReceiver();

const absent = (text: string, secrets: string[]) => secrets.filter((s) => text.includes(s));

test('a CRLF env file with interpolation and multi-line values configures the tools, and its snapshot copy holds no secret', async () => {
  const sb = sandbox();
  const { sources } = makeTree(sb.dir);
  delete (sb.env as Record<string, string>).BACKUP_ROOT;
  const secrets = ['pg-crlf-Secret-1', 'abandon ability able about above', '482913', '123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0', 'conn-pass-77', 'url-pass-88', 'tok-query-99', 'MIIEvQIBADANBgkq'];
  const lines = [
    '# L2 Dash env (edited on Windows)',
    `DATA_DIR=${sb.dir}`,
    `BACKUP_ROOT=\${DATA_DIR}/backups`,
    `BACKUP_SOURCES=${sources}`,
    'BACKUP_EXCLUDE="**/*.tmp,${UNSET_EXCLUDE:-cache/**}"',
    `POSTGRES_PASSWORD=${secrets[0]}`,
    `export WALLET_MNEMONIC="${secrets[1]} absent absorb abstract absurd abuse access accident"`,
    `BROKER_PIN=${secrets[2]}`,
    `TELEGRAM_BOT=${secrets[3]}`,
    `DB_CONN='host=db user=l2 password=${secrets[4]} sslmode=require'`,
    `ANALYTICS_URL=postgres://l2:${secrets[5]}@db:5432/analytics`,
    `FEED=https://feed.example/v1?symbol=ES&access_token=${secrets[6]}`,
    'SIGNING_CERT="-----BEGIN PRIVATE KEY-----',
    `${secrets[7]}AASCBKcwggSjAgEAAoIBAQC7`,
    '-----END PRIVATE KEY-----"',
    'TRADING_MODE=paper # not live yet',
    '',
  ];
  writeFileSync(sb.envFile, lines.join('\r\n'));
  const cfg = await run('l2backup', ['config', '--json'], sb.env);
  expect(cfg.stderr).toBe('');
  const settings = JSON.parse(cfg.stdout).settings;
  expect(settings.BACKUP_ROOT.value).toBe(sb.root);
  expect(settings.BACKUP_EXCLUDE.value).toBe('**/*.tmp,cache/**');
  const snap = await run('l2backup', ['snapshot'], sb.env);
  expect(snap.exitCode).toBe(0);
  const [id] = snapshots(sb.root);
  const copy = readFileSync(join(sb.root, id!, 'configs/envs/.env.backup'), 'utf8');
  expect(absent(copy, secrets)).toEqual([]);
  for (const k of ['POSTGRES_PASSWORD', 'WALLET_MNEMONIC', 'BROKER_PIN', 'TELEGRAM_BOT', 'DB_CONN', 'ANALYTICS_URL', 'FEED', 'SIGNING_CERT']) expect(copy).toMatch(new RegExp(`^(export )?${k}="REDACTED-set-${k}"\\r$`, 'm'));
  expect(copy).toContain('TRADING_MODE=paper\r\n'); // trailing comments are dropped: they may hold an old secret
  expect(copy).toContain(`BACKUP_SOURCES=${sources}\r\n`);
  expect(absent(snap.all, secrets)).toEqual([]);
});

test('a line compose accepts does not stop l2ops; a broken line is reported by number and rule, never quoted', async () => {
  const sb = sandbox();
  writeFileSync(sb.envFile, 'ALERT_BUFFER_MAX: 500\nEXTRA_DB: postgres://l2:colon-secret-5@db/l2?sslmode=require\n');
  const ok = await run('l2alert', ['config', '--json'], sb.env);
  expect(ok.exitCode).toBe(0);
  expect(JSON.parse(ok.stdout).settings.ALERT_BUFFER_MAX.value).toBe('500');
  expect(ok.all).not.toContain('colon-secret-5');

  const wrapped = 'c2VjcmV0LXdyYXBwZWQtb250by1pdHMtb3duLWxpbmU+/w==';
  for (const [text, rule] of [
    [`ALERT_WEBHOOK_SECRET=whsec-first-half\n${wrapped}\n`, /env file .* line 2: expected KEY=VALUE/],
    ['ALERT_WEBHOOK_SECRET whsec-spaced-secret=x\n', /env file .* line 1: expected KEY=VALUE; a variable name cannot contain spaces/],
    ['A=1\n\nALERT_WEBHOOK_SECRET="whsec-open-quote\n', /env file .* line 3: the double quote opened on this line is never closed/],
  ] as const) {
    writeFileSync(sb.envFile, text);
    const res = await run('l2alert', ['buffer-status'], sb.env);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(rule);
    expect(absent(res.all, [wrapped, wrapped.slice(0, 10), 'whsec-'])).toEqual([]);
  }
});

test('config, error hints and log lines mask URL userinfo and token parameters (HEALTH_ENDPOINTS, S3_ENDPOINT, health config)', async () => {
  const sb = sandbox();
  const secrets = ['user-pass-11', 'query-tok-22', 's3-pass-33', 'cfg-tok-44', 'sse-pass-55'];
  const healthFile = join(sb.dir, 'health.json');
  writeFileSync(healthFile, JSON.stringify({ targets: [{ name: 'api', url: `${t.base}/error?access_token=${secrets[3]}` }] }));
  writeFileSync(
    sb.envFile,
    [
      `HEALTH_ENDPOINTS=algo=http://ops:${secrets[0]}@127.0.0.1:${t.hangPort}/health?token=${secrets[1]},plain=${t.base}/health`,
      `HEALTH_SSE_STREAMS=l2=http://ops:${secrets[4]}@127.0.0.1:1/stream`,
      `HEALTH_CONFIG=${healthFile}`,
      'HEALTH_TIMEOUT_MS=500',
      'HEALTH_SSE_FIRST_EVENT_TIMEOUT_MS=500',
      `S3_ENDPOINT=http://minio:${secrets[2]}@127.0.0.1:9/`,
      `ALERT_WEBHOOK_URL=${hook.url}`,
      'HEALTH_FAILURE_THRESHOLD=1',
      '',
    ].join('\n'),
  );
  let text = '';
  for (const [program, args] of [
    ['l2health', ['config']],
    ['l2health', ['config', '--json']],
    ['l2backup', ['config']],
    ['l2backup', ['config', '--json']],
    ['l2health', ['once', '--json']],
    ['l2health', ['status', '--json']],
  ] as const) {
    const res = await run(program, [...args], sb.env);
    expect([program, args, res.stderr]).not.toEqual(expect.arrayContaining([expect.stringMatching(/internal error/)]));
    text += res.all;
  }
  expect(text).toMatch(/algo=http:\/\/\*\*\*\*@127\.0\.0\.1:\d+\/health\?token=\*\*\*\*/);
  expect(text).toContain('http://****@127.0.0.1:9/');
  text += hook.received.map((r) => r.raw).join('\n');
  // Error hints: a bad value next to a URL with credentials is shown masked.
  const bad = await run('l2health', ['once'], { ...sb.env, HEALTH_ENDPOINTS: `algo=http://ops:${secrets[0]}@127.0.0.1/health?token=${secrets[1]},broken` });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr).toMatch(/HEALTH_ENDPOINTS="algo=http:\/\/\*\*\*\*@127\.0\.0\.1\/health\?token=\*\*\*\*,broken"/);
  // A long value is cut for the hint only after masking: the cut cannot fall inside a password.
  const long = await run('l2health', ['once'], { ...sb.env, HEALTH_ENDPOINTS: `a=http://h/x,${'b'.repeat(36)}=http://ops:${secrets[0]}-and-more-of-it@127.0.0.1/health,broken` });
  expect(long.exitCode).toBe(2);
  expect(long.stderr).toMatch(/HEALTH_ENDPOINTS=".*\.\.\." \(from env\) is not valid/);
  // A URL where a name should be is not quoted back (it may carry credentials).
  const unnamed = await run('l2health', ['once'], { ...sb.env, HEALTH_ENDPOINTS: `http://ops:${secrets[0]}-and-a-longer-tail@127.0.0.1/health?token=${secrets[1]}` });
  expect(unnamed.exitCode).toBe(2);
  expect(unnamed.stderr).toMatch(/expected names of letters, digits, '\.', '_' or '-' \(item 1 is not\)/);
  text += long.all + unnamed.all;
  const badS3 = await run('l2backup', ['status'], { ...sb.env, S3_ENDPOINT: `ftp://minio:${secrets[2]}@127.0.0.1/` });
  expect(badS3.exitCode).toBe(2);
  text += bad.all + badS3.all;
  expect(absent(text, [...secrets, secrets[0]!.slice(0, 8)])).toEqual([]);
});
