/**
 * restic's `forget --keep-*` rules (internal/restic/snapshot_policy.go ApplyPolicy), as a pure
 * function of the snapshots' times, newest first:
 * - last=N keeps the N newest; hourly/daily/weekly/monthly/yearly=N keep the newest snapshot of
 *   each of the N newest calendar hours/days/ISO weeks/months/years that hold one; `all` keeps
 *   one per bucket without a limit. Buckets use the local time zone (TZ) of this process.
 * - As in restic, a rule with count left over also keeps the oldest snapshot (the longest history).
 * - within=D keeps every snapshot strictly newer than (newest snapshot - D), D applied as a
 *   calendar offset (years, months, days, then hours): relative to the newest snapshot, not to
 *   now, so backups that stopped running do not age out by themselves (restic's rule). The
 *   planner has already refused to plan when any snapshot is from the future.
 * Every kept snapshot carries its reasons: "daily 2026-11-20", "weekly 2026-W47", "within 3d".
 */
import { COUNT_KEYS, formatDuration, type CountKey, type KeepPolicy } from '../config/keep-policy.js';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** ISO 8601 week-numbering year and week of a local calendar date. */
export function isoWeek(y: number, m: number, d: number): [number, number] {
  const t = new Date(Date.UTC(y, m, d));
  const dow = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dow); // the Thursday of this week decides the year
  const year = t.getUTCFullYear();
  const week = Math.floor((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 / 7) + 1;
  return [year, week];
}

/** The bucket label of a time for each calendar rule (local time). */
export function bucketOf(key: Exclude<CountKey, 'last'>, time: number): string {
  const t = new Date(time);
  const [y, m, d] = [t.getFullYear(), t.getMonth(), t.getDate()];
  switch (key) {
    case 'hourly':
      return `${y}-${pad(m + 1)}-${pad(d)}T${pad(t.getHours())}`;
    case 'daily':
      return `${y}-${pad(m + 1)}-${pad(d)}`;
    case 'weekly': {
      const [wy, w] = isoWeek(y, m, d);
      return `${wy}-W${pad(w)}`;
    }
    case 'monthly':
      return `${y}-${pad(m + 1)}`;
    case 'yearly':
      return String(y);
  }
}

/** `time` minus a restic duration, in local calendar terms (Go's AddDate normalises as Date does). */
export function minusDuration(time: number, d: NonNullable<KeepPolicy['within']>): number {
  const t = new Date(time);
  t.setFullYear(t.getFullYear() - d.years, t.getMonth() - d.months, t.getDate() - d.days);
  const from = t.getTime() - d.hours * 3_600_000;
  // Past the first date a Date can hold (within=100000y100000y100000y): every snapshot is within.
  return Number.isNaN(from) ? -Infinity : from;
}

/**
 * For times sorted newest first: the keep reasons of each (an empty list: not kept by the policy).
 * `latest` is the newest time the within rule counts from (restic: the newest not from the future).
 */
export function applyKeepPolicy(times: number[], policy: KeepPolicy, latest = times[0]): string[][] {
  const reasons = times.map(() => [] as string[]);
  const withinFrom = policy.within && latest !== undefined ? minusDuration(latest, policy.within) : undefined;
  const counts = new Map(COUNT_KEYS.filter((k) => policy[k] !== undefined).map((k) => [k, policy[k]!]));
  const last = new Map<CountKey, string>();
  times.forEach((time, nr) => {
    if (withinFrom !== undefined && time > withinFrom) reasons[nr]!.push(`within ${formatDuration(policy.within!)}`);
    for (const [key, count] of counts) {
      if (count === 0) continue;
      const val = key === 'last' ? String(nr) : bucketOf(key, time);
      const repeat = val === last.get(key);
      // restic also keeps the oldest snapshot while the rule has count left (the longest history).
      if (!repeat || nr === times.length - 1) {
        last.set(key, val);
        if (count > 0) counts.set(key, count - 1);
        const label = key === 'last' ? `last ${nr + 1}` : `${key} ${val}`;
        reasons[nr]!.push(repeat ? `${label} (oldest)` : label);
      }
    }
  });
  return reasons;
}
