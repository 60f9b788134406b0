/** Transition rules with an injected clock: thresholds, one alert per transition, reminders. */
import { transition, uptime, type TargetState, type OpenAlert } from '../src/health/state.js';
import type { CheckResult } from '../src/health/types.js';

const th = { failure: 2, success: 1, reminderMinutes: 60 };
const down: CheckResult = { name: 'algo', kind: 'http', status: 'down', reason: 'connection refused' };
const up: CheckResult = { name: 'algo', kind: 'http', status: 'up', reason: 'HTTP 200', latencyMs: 12 };
const slow: CheckResult = { name: 'algo', kind: 'http', status: 'degraded', reason: 'slow: 1500 ms' };
const MIN = 60_000;

function runs(results: CheckResult[], step = 5 * MIN, start = Date.UTC(2025, 9, 3, 2, 0)) {
  let state: TargetState | undefined;
  let open: OpenAlert | undefined;
  return results.map((r, i) => {
    const o = transition('algo', state, open, r, start + i * step, th);
    state = o.state;
    open = o.open;
    return o;
  });
}

test('DOWN only after the failure threshold, then reminders every 60 minutes, then RESOLVED once', () => {
  const out = runs([down, down, ...Array(13).fill(down), up, up]);
  const alerts = out.map((o) => o.alert?.title);
  expect(alerts[0]).toBeUndefined();
  expect(alerts[1]).toBe('algo DOWN');
  // 5-minute runs: the first reminder 60 minutes after the DOWN alert (run index 13)
  expect(alerts.slice(2, 13).every((a) => a === undefined)).toBe(true);
  expect(alerts[13]).toBe('algo still DOWN');
  expect(alerts[15]).toBe('algo RESOLVED');
  expect(out[15]!.alert!.message).toMatch(/up again after 1 h 10 min down/);
  expect(alerts[16]).toBeUndefined();
  expect(out[16]!.open).toBeUndefined();
});

test('a single failure between successes raises nothing (no flapping)', () => {
  const out = runs([up, down, up, down, up]);
  expect(out.every((o) => !o.alert)).toBe(true);
});

test('DEGRADED is a warning, and DOWN after it is a new alert (after the failure threshold too)', () => {
  const out = runs([slow, slow, down, down, up]);
  expect(out[1]!.alert).toMatchObject({ level: 'warning', title: 'algo DEGRADED' });
  expect(out[2]!.alert).toBeUndefined();
  expect(out[3]!.alert).toMatchObject({ level: 'error', title: 'algo DOWN' });
  expect(out[4]!.alert).toMatchObject({ level: 'info', title: 'algo RESOLVED' });
});

test('a lost state with an open alert: no second DOWN, resolved on the next good check', () => {
  const now = Date.UTC(2025, 9, 3, 3, 0);
  const open: OpenAlert = { kind: 'down', since: new Date(now - 20 * MIN).toISOString(), lastAlertAt: new Date(now - 20 * MIN).toISOString() };
  const stillDown = transition('algo', undefined, open, down, now, { ...th, failure: 1 });
  expect(stillDown.alert).toBeUndefined();
  const back = transition('algo', stillDown.state, stillDown.open, up, now + 5 * MIN, th);
  expect(back.alert?.title).toBe('algo RESOLVED');
  expect(back.alert?.message).toMatch(/after 25 min 0 s down/);
});

test('uptime over a window counts degraded as up', () => {
  const now = 1_000_000_000;
  const h: [number, number][] = [
    [now / 1000 - 100, 0],
    [now / 1000 - 50, 1],
    [now / 1000 - 10, 2],
    [now / 1000 - 10 * 86_400, 2],
  ];
  expect(uptime(h, 86_400, now)).toBeCloseTo(2 / 3);
  expect(uptime([], 86_400, now)).toBeNull();
});

test('a target flapping between DOWN and DEGRADED respects the thresholds and the reminder interval', () => {
  // DOWN twice (alert), then two hours alternating degraded/down every 5 minutes.
  const flapping = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? slow : down));
  const out = runs([down, down, ...flapping]);
  const alerts = out.map((o, i) => [i, o.alert?.title]).filter(([, a]) => a !== undefined);
  // One DOWN, then a reminder every 60 minutes (runs 13 and 25), never a DEGRADED.
  expect(alerts).toEqual([
    [1, 'algo DOWN'],
    [13, 'algo still DOWN'],
    [25, 'algo still DOWN'],
  ]);
  // A change that lasts for the threshold is still reported once.
  const settled = runs([down, down, slow, slow, slow, slow]).map((o) => o.alert?.title);
  expect(settled).toEqual([undefined, 'algo DOWN', undefined, 'algo DEGRADED', undefined, undefined]);
});
