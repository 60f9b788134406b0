/**
 * An operator's attack on the three speed changes merged for issue 14 (a14b): local restore in
 * copy threads, the nightly without an await per small file, start-up without commander. The
 * built bin/ programs as child processes.
 */
import { writeFileSync, mkdirSync, readdirSync, existsSync, statSync, utimesSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { bin, run, sandbox } from '../helpers/run.js';
import { tracked } from '../helpers/cleanup.js';

const MB = 1024 * 1024;

function walkNames(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

/**
 * `restore latest --only models --json` into `target`, sent SIGTERM the moment it reports its
 * first restored file (stopped first, so the signal lands before it can copy any further).
 */
async function restoreStoppedAtFirstFile(env: NodeJS.ProcessEnv, target: string) {
  const child = tracked(execa('node', [bin('l2backup'), 'restore', 'latest', '--only', 'models', '--target', target, '--json'], { env, extendEnv: false, reject: false, all: true, buffer: { stdout: false } }));
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.includes('"phase":"restore"')) {
      child.kill('SIGSTOP');
      child.kill('SIGTERM');
      child.kill('SIGCONT');
      break;
    }
  }
  child.stdout!.resume();
  return child;
}

test('SIGTERM once every file is queued to the copy threads: the restore says it was interrupted (exit 1), never "every file matched" with files left out', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'models');
  mkdirSync(models);
  // Fewer files than the copy threads take in flight: the walk has queued them all at once.
  const FILES = 48;
  for (let i = 0; i < FILES; i++) writeFileSync(join(models, `m${String(i).padStart(2, '0')}.bin`), Buffer.alloc(8 * MB, i + 1));
  sb.env.BACKUP_SOURCES = `models=${models}`;
  expect((await run('l2backup', ['nightly'], sb.env)).exitCode).toBe(0);
  const target = join(sb.dir, 'restored');
  const res = await restoreStoppedAtFirstFile(sb.env, target);
  const restored = walkNames(join(target, 'models')).filter((n) => n.endsWith('.bin'));
  expect(walkNames(target).filter((n) => n.includes('.l2restore-'))).toEqual([]);
  expect(existsSync(join(sb.root, '.l2/locks/backup.lock'))).toBe(false);
  if (restored.length < FILES) {
    expect(String(res.all)).not.toMatch(/every file matched/);
    expect(String(res.all)).toMatch(/interrupted by SIGTERM/);
    expect(res.exitCode).toBe(1);
  } else {
    // Every file landed before the signal was seen: then a success is the truth.
    expect(res.exitCode).toBe(0);
  }
  expect(restored.length).toBeLessThan(FILES); // the attack reached its window (else it proved nothing)
}, 300_000);

const USAGE_LINES: [program: 'l2backup' | 'l2alert' | 'l2health', args: string[], culprit: RegExp][] = [
  ['l2backup', ['status', '--du=1'], /unknown option '--du=1'.*--du/],
  ['l2backup', ['statu'], /unknown command 'statu'/],
  ['l2backup', ['status', '--jsn'], /unknown option '--jsn'.*--json/],
  ['l2alert', ['buffer-statu'], /unknown command 'buffer-statu'.*buffer-status/],
  ['l2health', ['status', '--jsno'], /unknown option '--jsno'.*--json/],
];

test.each(USAGE_LINES)('a mistyped command line near a light one (%s %j): one line naming it, exit 2', async (program, args, culprit) => {
  const sb = sandbox();
  const res = await run(program, args, sb.env);
  expect(res.exitCode).toBe(2);
  expect(res.stdout).toBe('');
  const lines = res.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(culprit);
  expect(lines[0]).toMatch(/see '.*--help'$/);
});

test('SIGTERM during a first backup of many small files is seen within a few MiB of copying, not after 1,024 files read synchronously', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'models');
  mkdirSync(models);
  // Each just under the 1 MiB of a small file (copied synchronously): reaching the 1,024th takes
  // seconds, far longer than this test takes to freeze the run once it has started.
  const FILES = 1100;
  const body = Buffer.alloc(900 * 1024, 7);
  const old = new Date('2020-01-01T00:00:00Z');
  for (let i = 0; i < FILES; i++) {
    const f = join(models, `s${String(i).padStart(4, '0')}`);
    writeFileSync(f, Buffer.concat([body, Buffer.from(String(i))]));
    // An access time older than the mtime: the first read sets it (relatime), so it shows which files were read.
    utimesSync(f, old, statSync(f).mtime);
  }
  sb.env.BACKUP_SOURCES = `models=${models}`;
  const child = tracked(execa('node', [bin('l2backup'), 'snapshot', '--json'], { env: sb.env, extendEnv: false, reject: false, all: true, buffer: { stdout: false } }));
  // Frozen at its first status line and asked to stop: what it reads after that, it read before
  // its signal handler could run (the handler waits for the walk to let the event loop in).
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.includes('"phase":"snapshot"')) {
      child.kill('SIGSTOP');
      child.kill('SIGTERM');
      child.kill('SIGCONT');
      break;
    }
  }
  child.stdout!.resume();
  const res = await child;
  expect(res.exitCode).toBe(1);
  expect(String(res.all)).toMatch(/ERROR.*interrupted by SIGTERM/);
  expect(readdirSync(sb.root).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  const read = readdirSync(models).filter((n) => statSync(join(models, n)).atimeMs > old.getTime()).length;
  expect(read).toBeGreaterThan(0); // atime is kept on this volume (else the test shows nothing)
  expect(read).toBeLessThan(512);
}, 300_000);

test.each([
  ['l2backup', '--help'],
  ['l2alert', '--version'],
  ['l2health', 'status --help'],
])('%s %s into a reader that has gone (| true): exit 0, no stack trace', async (program, args) => {
  const sb = sandbox();
  // `true` exits at once: the help is written into a pipe with no reader (EPIPE).
  const res = await execa('bash', ['-c', `set -o pipefail; node ${bin(program as 'l2backup')} ${args} | true`], { env: sb.env, extendEnv: false, reject: false, all: true });
  expect(String(res.all)).toBe('');
  expect(res.exitCode).toBe(0);
});

test('SIGTERM while a copy thread copies a large file: its copy stops, its temp file is removed, nothing half-copied lands', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'models');
  mkdirSync(models);
  // One full batch of small files (one thread, answered first), then a large file (another thread).
  for (let i = 0; i < 32; i++) writeFileSync(join(models, `a${String(i).padStart(2, '0')}.txt`), `small ${i}\n`);
  const big = openSync(join(models, 'b-large.bin'), 'w');
  const chunk = Buffer.alloc(8 * MB, 5);
  for (let i = 0; i < 64; i++) writeSync(big, chunk);
  closeSync(big);
  sb.env.BACKUP_SOURCES = `models=${models}`;
  expect((await run('l2backup', ['nightly'], sb.env)).exitCode).toBe(0);
  const target = join(sb.dir, 'restored');
  const res = await restoreStoppedAtFirstFile(sb.env, target);
  expect(res.exitCode).toBe(1);
  expect(String(res.all)).toMatch(/ERROR.*interrupted by SIGTERM/);
  expect(walkNames(target).filter((n) => n.includes('.l2restore-'))).toEqual([]);
  expect(existsSync(join(target, 'models', 'b-large.bin'))).toBe(false);
}, 300_000);

test('a FIFO where the snapshot has a file (a damaged snapshot): restore fails naming it, exit 1, and never hangs in a copy thread', async () => {
  const sb = sandbox();
  const models = join(sb.dir, 'models');
  mkdirSync(models);
  for (const n of ['f1', 'f2', 'f3']) writeFileSync(join(models, n), `${n}\n`);
  sb.env.BACKUP_SOURCES = `models=${models}`;
  expect((await run('l2backup', ['nightly'], sb.env)).exitCode).toBe(0);
  const stored = join(sb.root, readdirSync(sb.root).find((n) => /^\d{8}-\d{6}$/.test(n))!, 'models', 'f2');
  rmSync(stored);
  execFileSync('mkfifo', [stored]);
  // A copy thread blocked opening the FIFO would hold the process past even its forced exit.
  const res = await run('l2backup', ['restore', 'latest', '--only', 'models', '--target', join(sb.dir, 'restored')], sb.env, { timeout: 120_000, killSignal: 'SIGKILL' });
  expect(res.exitCode).toBe(1);
  expect(res.stderr).toMatch(/ERROR.*models\/f2.*not a regular file/);
  expect(existsSync(join(sb.root, '.l2/locks/backup.lock'))).toBe(false);
}, 300_000);
