/**
 * Bad input across the three tools: each case expects its documented exit code, a one-line
 * message naming the culprit, no stack trace, and no change on disk. Prints one summary line.
 */
import { readdirSync, lstatSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox, type Sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';

let sb: Sandbox;
let snapshotId = '';
const envFiles: Record<string, string> = {};

function fingerprint(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.push(`${p} ${st.size} ${st.mtimeMs} ${st.mode}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.join('\n');
}

beforeAll(async () => {
  sb = sandbox();
  const { sources } = makeTree(sb.dir);
  sb.env.BACKUP_SOURCES = sources;
  expect((await run('l2backup', ['snapshot'], sb.env)).exitCode).toBe(0);
  snapshotId = readdirSync(sb.root).find((n) => /^\d{8}-\d{6}$/.test(n))!;
  const files: Record<string, string> = {
    syntax: 'GOOD=1\nthis line is wrong\n',
    quote: 'ALERT_WEBHOOK_SECRET="unterminated\n',
    name: 'BAD-NAME=hunter2\n',
    after: 'A="x" trailing\n',
  };
  mkdirSync(join(sb.dir, 'envs'));
  for (const [k, text] of Object.entries(files)) writeFileSync((envFiles[k] = join(sb.dir, 'envs', k)), text);
  writeFileSync(join(sb.dir, 'envs', 'health-bad.json'), '{"targets": [');
  writeFileSync(join(sb.dir, 'envs', 'health-key.json'), JSON.stringify({ targets: [{ name: 'x', url: 'http://a/h', colour: 'red' }] }));
});

type Case = [string, 'l2alert' | 'l2backup' | 'l2health', string[], Record<string, string>, number, RegExp];

const cases = (): Case[] => [
  ['unknown command', 'l2alert', ['bogus'], {}, 2, /unknown command 'bogus'/],
  ['unknown flag', 'l2alert', ['buffer-status', '--bogus'], {}, 2, /unknown option '--bogus'/],
  ['send without --title', 'l2alert', ['send', '--level', 'info', 'm'], {}, 2, /--title/],
  ['send with a bad level', 'l2alert', ['send', '--level', 'loud', '--title', 't', 'm'], {}, 2, /loud/],
  ['send without a message', 'l2alert', ['send', '--level', 'info', '--title', 't'], {}, 2, /message/],
  ['webhook URL not a URL', 'l2alert', ['buffer-status'], { ALERT_WEBHOOK_URL: 'hooks slack com' }, 2, /ALERT_WEBHOOK_URL=.*expected an http/],
  ['webhook URL ftp', 'l2alert', ['buffer-status'], { ALERT_WEBHOOK_URL: 'ftp://x/y' }, 2, /ALERT_WEBHOOK_URL/],
  ['negative buffer max', 'l2alert', ['buffer-status'], { ALERT_BUFFER_MAX: '-1' }, 2, /ALERT_BUFFER_MAX="-1"/],
  ['fractional buffer max', 'l2alert', ['buffer-status'], { ALERT_BUFFER_MAX: '1.5' }, 2, /ALERT_BUFFER_MAX="1.5"/],
  ['timeout not a number', 'l2alert', ['buffer-status'], { ALERT_TIMEOUT_MS: 'abc' }, 2, /ALERT_TIMEOUT_MS="abc"/],
  ['timeout over budget', 'l2alert', ['buffer-status'], { ALERT_TIMEOUT_MS: '20000', ALERT_BUDGET_MS: '1000' }, 2, /larger than ALERT_BUDGET_MS/],
  ['relative BACKUP_ROOT', 'l2alert', ['buffer-status'], { BACKUP_ROOT: 'backups' }, 2, /BACKUP_ROOT="backups"/],
  ['missing L2_ENV_FILE', 'l2alert', ['buffer-status'], { L2_ENV_FILE: '/nonexistent/env' }, 2, /L2_ENV_FILE=.*no such file/],
  ['env file syntax error', 'l2alert', ['buffer-status'], { L2_ENV_FILE: envFiles.syntax! }, 2, /line 2: expected KEY=VALUE/],
  ['env file unterminated quote', 'l2alert', ['buffer-status'], { L2_ENV_FILE: envFiles.quote! }, 2, /line 1: the double quote opened on this line is never closed/],
  ['env file bad name', 'l2alert', ['buffer-status'], { L2_ENV_FILE: envFiles.name! }, 2, /line 1: expected KEY=VALUE; the variable name has a character other than/],
  ['env file text after quote', 'l2alert', ['buffer-status'], { L2_ENV_FILE: envFiles.after! }, 2, /unexpected text after the closing quote/],
  ['test without a webhook', 'l2alert', ['test'], {}, 2, /ALERT_WEBHOOK_URL is not set/],
  ['flush without a webhook', 'l2alert', ['flush'], {}, 2, /ALERT_WEBHOOK_URL is not set/],
  ['restore ../etc', 'l2backup', ['restore', '../etc', '--target', '/tmp/x'], {}, 2, /"\.\.\/etc" is not a snapshot id/],
  ['restore latest/..', 'l2backup', ['restore', 'latest/..', '--target', '/tmp/x'], {}, 2, /"latest\/\.\." is not a snapshot id/],
  ['restore /etc', 'l2backup', ['restore', '/etc', '--target', '/tmp/x'], {}, 2, /"\/etc" is not a snapshot id/],
  ['restore an id that does not exist', 'l2backup', ['restore', '20990101-000000', '--target', '/tmp/x'], {}, 2, /snapshot 20990101-000000 is not in/],
  ['restore from nowhere', 'l2backup', ['restore', 'latest', '--from', 'nowhere'], {}, 2, /nowhere/],
  ['restore an unknown source', 'l2backup', ['restore', 'latest', '--only', 'nope', '--dry-run'], {}, 2, /--only nope: snapshot .* has no source "nope"/],
  ['restore into BACKUP_ROOT', 'l2backup', ['restore', 'latest', '--target', '/tmp'], { BACKUP_ROOT: '/tmp/l2-inside-target' }, 2, /overlaps BACKUP_ROOT|not in/],
  ['remote restore without a bucket', 'l2backup', ['restore', 'latest', '--from', 'remote', '--target', '/tmp/x'], {}, 2, /BACKUP_BUCKET is not set/],
  ['verify ../x', 'l2backup', ['verify', '../x'], {}, 2, /not a snapshot id/],
  ['verify --sample 2', 'l2backup', ['verify', '--remote', '--sample', '2'], {}, 2, /--sample must be a number from/],
  ['export ../x', 'l2backup', ['export', '../x', '-o', '/tmp/x.tgz'], {}, 2, /not a snapshot id/],
  ['export without -o', 'l2backup', ['export', 'latest'], {}, 2, /--output/],
  ['sources without =', 'l2backup', ['status'], { BACKUP_SOURCES: 'models' }, 2, /BACKUP_SOURCES="models"/],
  ['relative source path', 'l2backup', ['status'], { BACKUP_SOURCES: 'models=data/models' }, 2, /absolute path for source "models"/],
  ['duplicate source', 'l2backup', ['status'], { BACKUP_SOURCES: 'a=/x,a=/y' }, 2, /"a" appears twice/],
  ['source inside BACKUP_ROOT', 'l2backup', ['status'], { BACKUP_SOURCES: 'a=/tmp/r/a', BACKUP_ROOT: '/tmp/r' }, 2, /overlaps BACKUP_ROOT/],
  ['bucket without s3://', 'l2backup', ['status'], { BACKUP_BUCKET: 'my-bucket' }, 2, /BACKUP_BUCKET="my-bucket"/],
  ['bucket with capitals', 'l2backup', ['status'], { BACKUP_BUCKET: 's3://My_Bucket' }, 2, /bucket names are/],
  ['endpoint not a URL', 'l2backup', ['status'], { S3_ENDPOINT: 'minio:9000' }, 2, /S3_ENDPOINT="minio:9000"/],
  ['key without secret', 'l2backup', ['status'], { S3_ACCESS_KEY_ID: 'AKIAEXAMPLEKEY' }, 2, /S3_SECRET_ACCESS_KEY is not set but its partner is/],
  ['concurrency 0', 'l2backup', ['status'], { BACKUP_UPLOAD_CONCURRENCY: '0' }, 2, /BACKUP_UPLOAD_CONCURRENCY="0"/],
  ['negative retention', 'l2backup', ['status'], { BACKUP_LOCAL_RETENTION_DAYS: '-1' }, 2, /BACKUP_LOCAL_RETENTION_DAYS="-1"/],
  ['checksum mode', 'l2backup', ['status'], { S3_CHECKSUM: 'sometimes' }, 2, /S3_CHECKSUM="sometimes"/],
  ['list --remote without a bucket', 'l2backup', ['list', '--remote'], {}, 2, /BACKUP_BUCKET is not set/],
  ['duplicate endpoints', 'l2health', ['once'], { HEALTH_ENDPOINTS: 'a=http://x/h,a=http://y/h' }, 2, /"a" appears twice/],
  ['endpoint with a bad URL', 'l2health', ['once'], { HEALTH_ENDPOINTS: 'a=http//x' }, 2, /an http\(s\) URL for "a"/],
  ['stream without a name', 'l2health', ['once'], { HEALTH_SSE_STREAMS: 'http://api:3000/stream' }, 2, /name=url pairs|names of letters/],
  ['missing health config', 'l2health', ['once'], { HEALTH_CONFIG: '/nonexistent.json' }, 2, /no such file/],
  ['health config not JSON', 'l2health', ['once'], { HEALTH_CONFIG: '' }, 2, /not valid JSON/],
  ['health config unknown key', 'l2health', ['once'], { HEALTH_CONFIG: '' }, 2, /"colour" must be one of the known keys/],
  ['failure threshold 0', 'l2health', ['once'], { HEALTH_FAILURE_THRESHOLD: '0' }, 2, /HEALTH_FAILURE_THRESHOLD="0"/],
  ['no HTTP targets for health-only', 'l2health', ['health-only'], {}, 2, /no targets configured for health-only/],
  ['unknown health command', 'l2health', ['twice'], {}, 2, /unknown command 'twice'/],
];

const results: boolean[] = [];
afterAll(() => {
  process.stderr.write(`\nbad-input suite: ${results.length} cases tried, ${results.filter(Boolean).length} survived, ${results.filter((r) => !r).length} lost\n`);
});

test.each(cases().map((c, i) => [i, c[0]] as const))('bad input %#: %s', async (i) => {
  const [, program, args, extra, code, pattern] = cases()[i]!;
  const env = { ...sb.env, ...extra };
  if (extra.HEALTH_CONFIG === '') env.HEALTH_CONFIG = join(sb.dir, 'envs', i === cases().findIndex((c) => c[0] === 'health config not JSON') ? 'health-bad.json' : 'health-key.json');
  if (extra.L2_ENV_FILE === undefined && Object.values(extra).some((v) => v === undefined)) throw new Error('bad case');
  const before = fingerprint(sb.dir);
  const res = await run(program, args, env);
  let ok = false;
  try {
    expect(res.exitCode).toBe(code);
    const lines = res.stderr.trim().split('\n').filter((l) => !/\bWARN\b/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(res.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/);
    expect(fingerprint(sb.dir)).toBe(before);
    ok = true;
  } finally {
    results.push(ok);
  }
});

test('the suite has at least 40 cases', () => {
  expect(cases().length).toBeGreaterThanOrEqual(40);
  expect(snapshotId).toMatch(/^\d{8}-\d{6}$/);
});
