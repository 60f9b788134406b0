/**
 * Digest grouping as a property over many random alert sequences (a seeded generator, so a
 * failure is reproducible): a digest holds one key in one state, nothing is lost or repeated,
 * and for every key the messages tell its states in the order they happened.
 */
import { groupDigests, messageId } from '../src/alert/message.js';
import type { Alert, AlertLevel } from '../src/alert/types.js';

function prng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
}

const STATES: [AlertLevel, string][] = [
  ['error', 'DOWN'],
  ['warning', 'DEGRADED'],
  ['info', 'RESOLVED'],
];

function randomAlerts(rand: () => number): Alert[] {
  const n = Math.floor(rand() * 30);
  return Array.from({ length: n }, (_, i) => {
    const key = `k${Math.floor(rand() * 3)}`;
    const [level, word] = STATES[Math.floor(rand() * STATES.length)]!;
    return { id: `id-${i}`, level, title: `${key} ${word}`, message: 'm', source: 's', key, host: 'h', time: new Date(Date.UTC(2025, 9, 3, 2, i)).toISOString() };
  });
}

/** Consecutive repeats folded: [a, a, b, a] -> [a, b, a]. */
const runs = (xs: string[]) => xs.filter((x, i) => i === 0 || xs[i - 1] !== x);

test('digests: one key and one state each; nothing lost; per key the states in time order', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const alerts = randomAlerts(prng(seed));
    const groups = groupDigests(alerts);
    const ctx = `seed ${seed}`;
    expect([ctx, groups.flat().map((a) => a.id).sort()]).toEqual([ctx, alerts.map((a) => a.id).sort()]);
    for (const g of groups) {
      expect([ctx, new Set(g.map((a) => `${a.key}|${a.level}|${a.title}`)).size]).toEqual([ctx, 1]);
      expect([ctx, g.map((a) => a.time)]).toEqual([ctx, [...g.map((a) => a.time)].sort()]);
    }
    // Messages go out in the order of their oldest alert.
    const firsts = groups.map((g) => alerts.indexOf(g[0]!));
    expect([ctx, firsts]).toEqual([ctx, [...firsts].sort((a, b) => a - b)]);
    for (const key of new Set(alerts.map((a) => a.key))) {
      const told = groups.filter((g) => g[0]!.key === key).map((g) => g[0]!.title);
      expect([ctx, told]).toEqual([ctx, runs(alerts.filter((a) => a.key === key).map((a) => a.title))]);
    }
    // Every message has its own id.
    const ids = groups.map(messageId);
    expect([ctx, new Set(ids).size]).toEqual([ctx, groups.length]);
  }
});
