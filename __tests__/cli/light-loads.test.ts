/**
 * The often-started read-only commands load only their own bundle and Node's built-ins: no npm
 * package (the AWS SDK and its @smithy parts, commander, chalk...) and no file from
 * dist/bundle/full/. Start-up time is their point (issue 14); one static import in a module they
 * bundle (seen: the SDK's error classifier in s3-get.ts, through remote.ts) costs more than
 * the rest of the command. A preload records every file Node's CommonJS loader compiles.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { scratch } from '../helpers/cleanup.js';
import { bin, sandbox } from '../helpers/run.js';

const dir = mkdtempSync(join(scratch(), 'l2loads-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hook = join(dir, 'hook.cjs');
writeFileSync(
  hook,
  `const Module = require('node:module');
const fs = require('node:fs');
const seen = [];
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) { seen.push(filename); return compile.call(this, content, filename); };
process.on('exit', () => fs.writeFileSync(process.env.L2_LOADS_OUT, seen.join('\\n')));
`,
);

const COMMANDS: [('l2alert' | 'l2backup' | 'l2health'), string[]][] = [
  ['l2alert', ['buffer-status']],
  ['l2alert', ['buffer-status', '--json']],
  ['l2alert', ['config']],
  ['l2backup', []],
  ['l2backup', ['status', '--json']],
  ['l2backup', ['config']],
  ['l2health', ['status']],
  ['l2health', ['config', '--json']],
];

test.each(COMMANDS)('%s %j loads only bin/ and its light bundle', async (program, args) => {
  const sb = sandbox({ S3_BUCKET: 'b', S3_ENDPOINT: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' });
  const out = join(sb.dir, 'loads');
  const res = await execa('node', ['--require', hook, bin(program), ...args], { env: { ...sb.env, L2_LOADS_OUT: out }, extendEnv: false, reject: false });
  expect(res.stderr).not.toMatch(/internal error/);
  const loaded = readFileSync(out, 'utf8').split('\n').filter(Boolean);
  const foreign = loaded.filter((f) => f !== hook && !/\/bin\/[a-z0-9-]+\.js$/.test(f) && !/\/dist\/bundle\/l2[a-z]+\.cjs$/.test(f));
  expect(foreign).toEqual([]);
});
