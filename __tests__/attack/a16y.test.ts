/**
 * Attack tests (helper a16y) on the light commands' V8 code cache (bin/light-loader.js), the
 * synchronous state reads of buffer-status, and the end-of-run hook. Each runs the built bin/
 * programs (or a copy of bin/ and a light bundle) as child processes.
 */
import { chownSync, chmodSync, closeSync, cpSync, openSync, renameSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { scratch } from '../helpers/cleanup.js';
import { ROOT, sandbox } from '../helpers/run.js';




describe('the code cache file: who owns it, what it is', () => {
  const bundle = join(ROOT, 'dist', 'bundle', 'l2alert.cjs');
  const sb = sandbox();
  const env = { ...sb.env, L2_ENV_FILE: '/dev/null' };
  const installed: string[] = [];
  afterAll(() => {
    for (const dir of installed) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of bin/ and l2alert's light bundle (`source`), without a cache. */
  function install(source: Buffer): string {
    const dir = mkdtempSync(join(scratch(), 'l2a16y-'));
    installed.push(dir);
    cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
    mkdirSync(join(dir, 'dist', 'bundle'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'bundle', 'l2alert.cjs'), source);
    return join(dir, 'dist', 'bundle', 'l2alert.cjs.cache');
  }

  /**
   * A cache file that passes every byte-for-byte check for the real bundle, but holds the code of
   * another bundle of the same length (its `config` prints "ENV FILE:"): V8 checks only the
   * source's length, so whoever can write the cache file decides what runs.
   */
  function forgedCache(): Buffer {
    const real = readFileSync(bundle, 'latin1');
    expect(real.split('env file: ').length).toBe(2);
    const forger = install(Buffer.from(real.replace('env file: ', 'ENV FILE: '), 'latin1'));
    const out = `${forger}.forged`;
    const script = `
      const fs = require('node:fs');
      const L = require(${JSON.stringify(join(forger, '..', '..', '..', 'bin', 'light-loader.js'))});
      const { exports: ex, script } = L.loadLight('l2alert');
      ex.main(['node', 'l2alert', 'config']).then(() => {
        fs.writeFileSync(${JSON.stringify(out)}, L.encodeCache(fs.readFileSync(${JSON.stringify(bundle)}), script.createCachedData()));
        process.exit(0);
      });`;
    execaSync('node', ['-e', script], { env, extendEnv: false, timeout: 120_000 });
    return readFileSync(out);
  }

  async function config(cache: string) {
    const r = await execa('node', [join(cache, '..', '..', '..', 'bin', 'l2alert.js'), 'config'], { env, extendEnv: false, reject: false, timeout: 120_000 });
    return { exitCode: r.exitCode, first: r.stdout.split('\n')[0], stderr: r.stderr };
  }

  let forged: Buffer;
  beforeAll(() => {
    forged = forgedCache();
  }, 300_000);

  test('(the forged cache is taken when it belongs to the bundle\'s owner: what the cases below refuse is live)', async () => {
    const cache = install(readFileSync(bundle));
    writeFileSync(cache, forged, { mode: 0o644 });
    chmodSync(cache, 0o644);
    expect(await config(cache)).toMatchObject({ exitCode: 0, first: expect.stringMatching(/^ENV FILE: /) });
  }, 300_000);

  test('a cache owned by another user than the bundle is not used (a root shell would run that user\'s code)', async () => {
    const cache = install(readFileSync(bundle));
    writeFileSync(cache, forged);
    chownSync(cache, 65534, 65534);
    expect(await config(cache)).toMatchObject({ exitCode: 0, first: expect.stringMatching(/^env file: /), stderr: '' });
  }, 300_000);

  test('a cache writable by others (the bundle is not) is not used', async () => {
    const cache = install(readFileSync(bundle));
    writeFileSync(cache, forged);
    chmodSync(cache, 0o666);
    expect(await config(cache)).toMatchObject({ exitCode: 0, first: expect.stringMatching(/^env file: /), stderr: '' });
  }, 300_000);

  test('a FIFO as the cache file does not hang the command', async () => {
    const cache = install(readFileSync(bundle));
    execaSync('mkfifo', [cache]);
    expect(await config(cache)).toMatchObject({ exitCode: 0, first: expect.stringMatching(/^env file: /), stderr: '' });
  }, 300_000);

  test('a symlink to /dev/zero as the cache file is not read without end', async () => {
    const cache = install(readFileSync(bundle));
    symlinkSync('/dev/zero', cache);
    expect(await config(cache)).toMatchObject({ exitCode: 0, first: expect.stringMatching(/^env file: /), stderr: '' });
  }, 300_000);
});

/** Runs a bin with stdout on /dev/full itself (not a pipe the parent copies from). */
async function toDevFull(program: string, args: string[], env: Record<string, string>): Promise<{ exitCode: number | null; stderr: string }> {
  const full = openSync('/dev/full', 'w');
  try {
    const child = spawn('node', [program, ...args], { env, stdio: ['ignore', full, 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [exitCode] = (await once(child, 'close')) as [number | null];
    return { exitCode, stderr: stderr.trimEnd() };
  } finally {
    closeSync(full);
  }
}

describe('stdout that refuses the write (/dev/full): one line and exit 1, on the light path and off it', () => {
  const sb = sandbox();
  // The light commands, and the same commands as command lines the commander programs run
  // (a repeated flag, bare `l2backup`): the output must not depend on which path ran them.
  test.each([
    ['l2alert', ['config', '--json']],
    ['l2alert', ['config', '--json', '--json']],
    ['l2alert', ['buffer-status', '--json', '--json']],
    ['l2backup', []],
    ['l2health', ['status', '--json', '--json']],
  ] as const)('%s %s > /dev/full', async (tool, args) => {
    const r = await toDevFull(join(ROOT, 'bin', `${tool}.js`), [...args], sb.env);
    const lines = r.stderr.split('\n').filter((l) => !/ WARN /.test(l));
    expect({ exitCode: r.exitCode, lines }).toEqual({ exitCode: 1, lines: [expect.stringMatching(/ERROR .*cannot write standard output to \/dev\/full: no space left there \(ENOSPC\)/)] });
  }, 120_000);
});

describe('buffer-status sets a corrupt delivery state aside without the lock: only the file it read', () => {
  /** The state letter of a process (/proc/<pid>/stat): 'T' once stopped. */
  function state(pid: number): string {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return '';
    }
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  }

  /** Stopped at the entry of rename(2) (x86-64: rename 82, renameat 264, renameat2 316)? */
  function atRename(pid: number): boolean {
    if (!'tT'.includes(state(pid) || '-')) return false;
    try {
      return ['82', '264', '316'].includes(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]!);
    } catch {
      return false;
    }
  }

  test('a good state written by another process between its read and its move is kept', async () => {
    const sb = sandbox();
    const l2 = join(sb.root, '.l2');
    mkdirSync(l2, { mode: 0o700 });
    const delivery = join(l2, 'alert-delivery.json');
    writeFileSync(delivery, '{bad', { mode: 0o600 });
    // strace holds buffer-status at the entry of its rename (after it read the corrupt file) for
    // 10 s: the window another process's write lands in. With --seccomp-bpf the child stops only
    // at that rename.
    const tracer = spawn('strace', ['-f', '-qq', '--seccomp-bpf', '-o', '/dev/null', '-e', 'trace=rename,renameat,renameat2', '-e', 'inject=rename,renameat,renameat2:delay_enter=10000000', 'node', join(ROOT, 'bin', 'l2alert.js'), 'buffer-status', '--json'], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    tracer.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = once(tracer, 'close');
    let node: number | undefined;
    while (node === undefined || !atRename(node)) {
      // strace's own probe children aside: the one running l2alert.
      for (const kid of readFileSync(`/proc/${tracer.pid}/task/${tracer.pid}/children`, 'utf8').trim().split(' ').filter(Boolean)) {
        if (state(Number(kid)) !== '' && readFileSync(`/proc/${kid}/cmdline`, 'utf8').includes('l2alert.js')) node = Number(kid);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // flush, meanwhile, records its delivery state (atomically, as writeJsonAtomic does).
    writeFileSync(`${delivery}.new`, JSON.stringify({ droppedTotal: 7, droppedUnreported: 0 }), { mode: 0o600 });
    renameSync(`${delivery}.new`, delivery);
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ count: 0 });
    expect(JSON.parse(readFileSync(delivery, 'utf8'))).toEqual({ droppedTotal: 7, droppedUnreported: 0 });
  }, 180_000);
});
