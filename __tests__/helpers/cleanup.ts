/**
 * What the tests start and must stop: child processes and system users. Processes are killed
 * when their test file ends (per-file.ts); users are removed when the run ends (global-teardown).
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

let fileScratch: string | undefined;

/** The test file's scratch folder (set by setup/per-file.ts, removed when the file ends). */
export function scratch(): string {
  return fileScratch ?? tmpdir();
}

export function setScratch(dir: string | undefined): void {
  fileScratch = dir;
}

interface Killable {
  kill(signal?: NodeJS.Signals | number): boolean;
  exitCode: number | null;
  signalCode?: string | null;
  then?: unknown;
}

const children = new Set<Killable>();

/** Registers a child process so it is killed at the end of the test file if still running. */
export function tracked<T extends Killable>(child: T): T {
  children.add(child);
  return child;
}

export async function killTracked(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const c of children) {
    if (c.exitCode === null && !c.signalCode) {
      c.kill('SIGKILL');
      if (c.then) waits.push(Promise.resolve(c as unknown as Promise<unknown>).catch(() => {}));
    }
  }
  children.clear();
  await Promise.all(waits);
}

/** The run's non-root test user (created on first use, removed by the global teardown). */
export async function testUser(): Promise<string> {
  const user = process.env.L2_TEST_USER ?? 'l2ops-test';
  if ((await execa('id', ['-u', user], { reject: false })).exitCode !== 0) {
    const add = await execa('useradd', ['--create-home', '--shell', '/bin/sh', user], { reject: false, all: true });
    // 9: made meanwhile by a test file in the other worker
    if (add.exitCode !== 0 && add.exitCode !== 9) throw new Error(`useradd ${user}: ${add.all}`);
    if (process.env.L2_TEST_RUN_DIR && add.exitCode === 0) appendFileSync(join(process.env.L2_TEST_RUN_DIR, '.users'), `${user}\n`);
  }
  return user;
}

/** Polls `check` until it holds (an event we cannot subscribe to); fails naming `what` after `limitMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, limitMs = 120_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Mount points at or below `dir`, deepest first (global-teardown.mjs has the same for the run). */
export function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  return points.filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}
