/**
 * The light commands compile their bundle from the V8 code cache the build stores beside it
 * (bin/light-loader.js). V8 itself checks only the source's length and, in release builds, no
 * checksum: a cache with a flipped byte crashed the process (SIGSEGV) or hung it. Any cache that
 * is damaged, from another build, or rejected by V8 must leave the command's output and exit
 * code exactly as without a cache. Each case runs a copy of bin/ and the bundle, damaged.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { scratch } from '../helpers/cleanup.js';
import { ROOT, sandbox } from '../helpers/run.js';

const COMMANDS = [['config'], ['config', '--json'], ['buffer-status', '--json']];
const bundle = join(ROOT, 'dist', 'bundle', 'l2alert.cjs');
const built = readFileSync(`${bundle}.cache`);
const sb = sandbox({ ALERT_WEBHOOK_URL: 'https://user:hunter2sekrit@hooks.example/x?token=t' });

/** A copy of bin/ and l2alert's light bundle, with `cache` as its cache file (none: undefined). */
const installed: string[] = [];
afterAll(() => {
  for (const dir of installed) rmSync(dir, { recursive: true, force: true });
});

function install(cache: Buffer | 'folder' | undefined, source = readFileSync(bundle)): string {
  const dir = mkdtempSync(join(scratch(), 'l2cc-'));
  installed.push(dir);
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'dist', 'bundle'), { recursive: true });
  writeFileSync(join(dir, 'dist', 'bundle', 'l2alert.cjs'), source);
  if (cache === 'folder') mkdirSync(join(dir, 'dist', 'bundle', 'l2alert.cjs.cache'));
  else if (cache) writeFileSync(join(dir, 'dist', 'bundle', 'l2alert.cjs.cache'), cache);
  return dir;
}

async function outputs(dir: string) {
  const out = [];
  for (const args of COMMANDS) {
    const r = await execa('node', [join(dir, 'bin', 'l2alert.js'), ...args], { env: sb.env, extendEnv: false, reject: false, timeout: 120_000 });
    out.push({ args, exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr });
  }
  return out;
}

/** Whether V8 took the cache (false), rejected it (true) or was given none (undefined). */
async function rejected(dir: string): Promise<boolean | undefined> {
  const r = await execa('node', ['-e', `process.stdout.write(String(require(${JSON.stringify(join(dir, 'bin', 'light-loader.js'))}).loadLight('l2alert').script.cachedDataRejected))`], { env: sb.env, extendEnv: false, timeout: 120_000 });
  return r.stdout === 'undefined' ? undefined : r.stdout === 'true';
}

// The layout of a cache file (bin/light-loader.js): magic, two lengths, the source, the cache twice.
const header = built.indexOf('\n') + 1 + 8;
const sourceLength = built.readUInt32LE(header - 8);
const cacheLength = built.readUInt32LE(header - 4);
const firstCopy = header + sourceLength;

function flipped(at: number[]): Buffer {
  const b = Buffer.from(built);
  for (const i of at) for (let k = 0; k < 8; k++) b[i + k]! ^= 0x5a;
  return b;
}

let expected: Awaited<ReturnType<typeof outputs>>;
beforeAll(async () => {
  const plain = install(undefined);
  expected = await outputs(plain);
  expect(await rejected(plain)).toBeUndefined();
  expect(expected.map((o) => o.exitCode)).toEqual([0, 0, 0]);
  expect(expected[0]!.stdout).toContain('ALERT_WEBHOOK_URL');
  expect(expected.map((o) => o.stdout + o.stderr).join('')).not.toContain('hunter2sekrit');
}, 300_000);

test('the build makes a cache this Node.js accepts, and the commands print the same with it', async () => {
  expect(built.length).toBe(header + sourceLength + 2 * cacheLength);
  const dir = install(built);
  expect(await rejected(dir)).toBe(false);
  expect(await outputs(dir)).toEqual(expected);
}, 300_000);

test.each([
  ['a flipped byte in the first copy of the cache', () => flipped([firstCopy + Math.floor(cacheLength / 2)])],
  ['a flipped byte in the second copy', () => flipped([firstCopy + cacheLength + 40])],
  ['a flipped byte in the stored source', () => flipped([header + 100])],
  ['a cut-off file', () => built.subarray(0, built.length - 1000)],
  ['an empty file', () => Buffer.alloc(0)],
  ['another file in its place', () => readFileSync(bundle)],
  ['a folder in its place', () => 'folder' as const],
])('%s: not used; same output and exit codes', async (_name, cache) => {
  const dir = install(cache());
  expect(await rejected(dir)).toBeUndefined();
  expect(await outputs(dir)).toEqual(expected);
}, 300_000);

test('a cache made from another build of the same length is not used', async () => {
  // One character of the bundle changed (its first comment), the length kept: V8 alone would take it.
  const source = readFileSync(bundle, 'latin1');
  const at = source.indexOf('// dist/');
  const other = Buffer.from(source.slice(0, at + 3) + (source[at + 3] === 'd' ? 'x' : 'd') + source.slice(at + 4), 'latin1');
  const dir = install(built, other);
  expect(await rejected(dir)).toBeUndefined();
  expect(await outputs(dir)).toEqual(expected);
}, 300_000);

test('a cache V8 rejects (another V8 version) compiles the source instead', async () => {
  // The V8 version hash (the cache's second word) changed in both copies: whole, but not this V8's.
  const b = Buffer.from(built);
  for (const at of [firstCopy, firstCopy + cacheLength]) b.writeUInt32LE(b.readUInt32LE(at + 4) ^ 0xffff, at + 4);
  const dir = install(b);
  expect(await rejected(dir)).toBe(true);
  expect(await outputs(dir)).toEqual(expected);
}, 300_000);
