/**
 * Locks are exclusive: 16 processes contend for one mutex thousands of times (four of them
 * SIGKILL themselves while holding it, so takeovers happen too). Overlaps must be 0, and every
 * "took over a stale lock" warning must answer a real death. Prints its figures in one line.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { ROOT } from '../helpers/run.js';
import { acquireLock, deadReason, withMutex } from '../../src/state/lock.js';

const PROCESSES = 16;
const EACH = 200;
const KILLED = 4;

test(`${PROCESSES} processes, ${PROCESSES * EACH} acquisitions (${KILLED} holders killed): 0 overlaps, no false takeover warnings`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'l2lock-'));
  try {
    const worker = join(ROOT, '__tests__/helpers/lock-stress-worker.mjs');
    const children = Array.from({ length: PROCESSES }, (_, i) =>
      execa('node', [worker, join(dir, 'm.lock'), join(dir, 'inside'), String(EACH), String(i < KILLED ? EACH - 40 - i * 25 : -1)], { reject: false }),
    );
    const results = await Promise.all(children);
    const counts = results.map((r) => JSON.parse(String(r.stdout).trim().split('\n').pop()!) as { acquisitions: number; overlaps: number; takeovers: number; killed: boolean });
    const sum = (k: 'acquisitions' | 'overlaps' | 'takeovers') => counts.reduce((n, c) => n + c[k], 0);
    const killed = counts.filter((c) => c.killed).length;
    const falseTakeovers = sum('takeovers') - killed;
    process.stderr.write(`\nlock stress: ${PROCESSES} processes, ${sum('acquisitions')} acquisitions, ${sum('overlaps')} overlaps, ${killed} holders killed, ${sum('takeovers')} takeovers, ${falseTakeovers} false takeover warnings\n`);
    expect(killed).toBe(KILLED);
    expect(counts.filter((c) => !c.killed).every((c) => c.acquisitions === EACH)).toBe(true);
    expect(sum('overlaps')).toBe(0);
    expect(falseTakeovers).toBe(0);
    expect(readdirSync(dir)).toEqual([]); // no lock, takeover marker or temp file left behind
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock file that was just released (absent) is not a dead lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'l2lock-'));
  try {
    expect(deadReason(join(dir, 'gone.lock'), undefined)).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a symlink planted at a lock path is refused, never followed or replaced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'l2lock-'));
  try {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'not a lock');
    symlinkSync(victim, join(dir, 'x.lock'));
    await expect(withMutex(join(dir, 'x.lock'), 'test', async () => 1, 200)).rejects.toThrow(/refusing to follow the symlink at .*x\.lock/);
    await expect(acquireLock(join(dir, 'x.lock'), 'test')).rejects.toThrow(/refusing to follow the symlink/);
    expect(readFileSync(victim, 'utf8')).toBe('not a lock');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
