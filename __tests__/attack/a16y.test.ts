/**
 * Attack tests (helper a16y) on the light commands' V8 code cache (bin/light-loader.js), the
 * synchronous state reads of buffer-status, and the end-of-run hook. Each runs the built bin/
 * programs (or a copy of bin/ and a light bundle) as child processes.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { scratch } from '../helpers/cleanup.js';
import { ROOT, sandbox } from '../helpers/run.js';




describe('the code cache file is only read when it is a regular file of a bounded size', () => {
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

  async function config(cache: string) {
    const r = await execa('node', [join(cache, '..', '..', '..', 'bin', 'l2alert.js'), 'config'], { env, extendEnv: false, reject: false, timeout: 120_000 });
    return { exitCode: r.exitCode, first: r.stdout.split('\n')[0], stderr: r.stderr };
  }

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
