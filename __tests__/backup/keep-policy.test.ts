/**
 * Calendar retention (BACKUP_LOCAL_KEEP / BACKUP_REMOTE_KEEP): restic's `forget --keep-*` rules.
 * Checked with fast-check over random policies, catalogs and clocks:
 * - the planner's calendar decisions match a small reference written differently here
 *   (sets of buckets rather than restic's running counters; ISO weeks by the ordinal-date formula);
 * - the safety rules hold under any policy: the newest complete copy of each source, pending
 *   uploads and snapshots in use are never deleted;
 * - every decision carries its reasons; the parser accepts what it prints and names bad keys.
 */
import fc from 'fast-check';
import { planRetention } from '../../src/backup/retention.js';
import { applyKeepPolicy } from '../../src/backup/keep.js';
import { byFinishDesc, type Catalog, type CatalogEntry } from '../../src/backup/catalog.js';
import { idFor } from '../../src/backup/layout.js';
import { keepPolicy, COUNT_KEYS, type KeepPolicy } from '../../src/config/keep-policy.js';
import { Invalid } from '../../src/config/parsers.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const SOURCES = ['models', 'logs', 'reports', 'configs'] as const;
const params = { numRuns: 2000 };

// ---- the reference: buckets by local calendar fields, written independently of src/backup/keep.ts
const two = (n: number) => String(n).padStart(2, '0');
function refIsoWeek(t: Date): string {
  // Ordinal-date formula: week = floor((ordinal - weekday + 10) / 7), with the year's edges.
  const y = t.getFullYear();
  const ordinal = Math.round((Date.UTC(y, t.getMonth(), t.getDate()) - Date.UTC(y, 0, 1)) / DAY) + 1;
  const weekday = t.getDay() === 0 ? 7 : t.getDay();
  const weeksIn = (year: number) => {
    const p = (yy: number) => (yy + Math.floor(yy / 4) - Math.floor(yy / 100) + Math.floor(yy / 400)) % 7;
    return p(year) === 4 || p(year - 1) === 3 ? 53 : 52;
  };
  let week = Math.floor((ordinal - weekday + 10) / 7);
  let year = y;
  if (week < 1) {
    year = y - 1;
    week = weeksIn(year);
  } else if (week > weeksIn(y)) {
    year = y + 1;
    week = 1;
  }
  return `${year}-W${two(week)}`;
}
const refKey: Record<string, (t: Date) => string> = {
  hourly: (t) => `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}T${two(t.getHours())}`,
  daily: (t) => `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}`,
  weekly: refIsoWeek,
  monthly: (t) => `${t.getFullYear()}-${two(t.getMonth() + 1)}`,
  yearly: (t) => String(t.getFullYear()),
};

/** Indexes (into times, newest first) each rule keeps: the newest of each of the N newest buckets, plus the oldest while buckets were left. */
function reference(times: number[], policy: KeepPolicy, latest = times[0]!): Set<number> {
  const kept = new Set<number>();
  if (policy.within) {
    const from = new Date(latest);
    from.setFullYear(from.getFullYear() - policy.within.years, from.getMonth() - policy.within.months, from.getDate() - policy.within.days);
    times.forEach((t, i) => t > from.getTime() - policy.within!.hours * 3_600_000 && kept.add(i));
  }
  for (const key of COUNT_KEYS) {
    const n = policy[key];
    if (n === undefined) continue;
    const limit = n === -1 ? Infinity : n;
    const keyOf = (i: number) => (key === 'last' ? String(i) : refKey[key]!(new Date(times[i]!)));
    const firstIndexOfBucket = new Map<string, number>();
    times.forEach((_, i) => !firstIndexOfBucket.has(keyOf(i)) && firstIndexOfBucket.set(keyOf(i), i));
    const newestBuckets = [...firstIndexOfBucket.values()].slice(0, limit);
    for (const i of newestBuckets) kept.add(i);
    const bucketsBeforeOldest = new Set(times.slice(0, -1).map((_, i) => keyOf(i))).size;
    if (times.length && bucketsBeforeOldest < limit) kept.add(times.length - 1);
  }
  return kept;
}

// ---- generators
const countArb = fc.oneof(fc.integer({ min: 1, max: 12 }), fc.constant(-1));
const durationArb = fc.record({ years: fc.integer({ min: 0, max: 1 }), months: fc.integer({ min: 0, max: 3 }), days: fc.integer({ min: 0, max: 40 }), hours: fc.integer({ min: 0, max: 48 }) }).filter((d) => d.years + d.months + d.days + d.hours > 0);
const policyArb: fc.Arbitrary<KeepPolicy> = fc
  .record({ last: countArb, hourly: countArb, daily: countArb, weekly: countArb, monthly: countArb, yearly: countArb, within: durationArb }, { requiredKeys: [] })
  .filter((p) => Object.keys(p).length > 0)
  .map((p) => keepPolicy(Object.entries(p).map(([k, v]) => `${k}=${typeof v === 'number' ? (v === -1 ? 'all' : v) : `${v.years}y${v.months}m${v.days}d${v.hours}h`}`).join(',')));

// Times over ~2.5 years, to the minute (many share a day, week, month), newest first.
const timesArb = fc.uniqueArray(fc.integer({ min: 0, max: 900 * 24 * 60 }), { minLength: 1, maxLength: 60 }).map((ms) => ms.map((m) => T0 - m * 60_000).sort((a, b) => b - a));

const entryArb = fc.record({
  kind: fc.constantFrom('nightly', 'snapshot', 'emergency-pre-restore' as const),
  finishedAt: fc.integer({ min: 0, max: 400 * 24 * 60 }).map((m) => T0 - m * 60_000),
  sources: fc.dictionary(fc.constantFrom(...SOURCES), fc.constantFrom('complete', 'partial' as const), { minKeys: 0, maxKeys: 4 }),
  remote: fc.constantFrom('none', 'pending', 'uploaded', 'skipped' as const),
  damaged: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  inUse: fc.integer({ min: 0, max: 8 }).map((n) => n === 0),
});
const catalogArb = fc.uniqueArray(fc.integer({ min: 0, max: 10_000_000 }), { maxLength: 40 }).chain((ids) =>
  fc.tuple(...ids.map(() => entryArb)).map((es) => es.map((e, i) => ({ ...e, id: idFor(T0 - 500 * DAY + ids[i]! * 1000), damaged: e.damaged || undefined }))),
);
const asCatalog = (c: (CatalogEntry & { inUse: boolean })[]): Catalog => c.map(({ inUse: _, ...e }) => e);
const inUseOf = (c: { id: string; inUse: boolean }[]) => new Map(c.filter((e) => e.inUse).map((e) => [e.id, 'in use by restore']));
const nowArb = fc.integer({ min: 0, max: 30 * 24 * 60 }).map((m) => T0 + m * 60_000);

test('calendar buckets match the reference (restic semantics) for any policy and any times', () => {
  fc.assert(
    fc.property(timesArb, policyArb, (times, policy) => {
      const reasons = applyKeepPolicy(times, policy);
      const kept = new Set(reasons.flatMap((r, i) => (r.length ? [i] : [])));
      expect([...kept].sort((a, b) => a - b)).toEqual([...reference(times, policy)].sort((a, b) => a - b));
    }),
    params,
  );
});

test('each reason names the rule and the bucket of the snapshot it keeps', () => {
  fc.assert(
    fc.property(timesArb, policyArb, (times, policy) => {
      applyKeepPolicy(times, policy).forEach((rs, i) => {
        for (const r of rs) {
          const [rule, value] = r.split(' ');
          if (rule === 'within') expect(r).toMatch(/^within (\d+[ymdh])+$/);
          else if (rule === 'last') expect(Number(value)).toBe(i + 1);
          else expect(value).toBe(refKey[rule!]!(new Date(times[i]!)));
        }
      });
    }),
    params,
  );
});

test('a daily rule keeps the newest snapshot of each day, never an older one of the same day', () => {
  fc.assert(
    fc.property(timesArb, fc.integer({ min: 1, max: 30 }), (times, n) => {
      const reasons = applyKeepPolicy(times, keepPolicy(`daily=${n}`));
      const seen = new Set<string>();
      times.forEach((t, i) => {
        const day = refKey.daily!(new Date(t));
        const newestOfDay = !seen.has(day);
        seen.add(day);
        const byDay = reasons[i]!.filter((r) => r.startsWith('daily') && !r.endsWith('(oldest)'));
        if (!newestOfDay) expect(byDay).toEqual([]);
      });
    }),
    params,
  );
});

test('under any policy: the newest complete copy of each source, pending uploads and snapshots in use are never deleted', () => {
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, fc.integer({ min: 0, max: 30 }), (raw, keep, now, days) => {
      const catalog = asCatalog(raw);
      const inUse = inUseOf(raw);
      const plan = planRetention(catalog, { days, preRestoreDays: days, keep }, now, inUse);
      expect(plan.keep.length + plan.delete.length).toBe(catalog.length);
      expect(new Set([...plan.keep, ...plan.delete].map((d) => d.id)).size).toBe(catalog.length);
      const deleted = new Set(plan.delete.map((d) => d.id));
      for (const s of SOURCES) {
        const newest = catalog.filter((e) => e.kind !== 'emergency-pre-restore' && !e.damaged && e.sources[s] === 'complete').sort(byFinishDesc)[0];
        if (newest) expect(deleted.has(newest.id)).toBe(false);
      }
      for (const e of catalog) if (e.remote === 'pending' || inUse.has(e.id)) expect(deleted.has(e.id)).toBe(false);
      for (const k of plan.keep) {
        expect(k.reasons.length).toBeGreaterThan(0);
        expect(k.why).toBe(k.reasons.join(', '));
        if (inUse.has(k.id)) expect(k.reasons).toContain('in use by restore');
      }
      for (const d of plan.delete) expect(d.why).toMatch(/^(not kept by |older than )/);
    }),
    params,
  );
});

test('the planner keeps by policy exactly what the reference keeps (damaged backups by within only, captures by age)', () => {
  const POLICY_REASON = /^(within|last|hourly|daily|weekly|monthly|yearly|younger than) /;
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, (raw, keep, now) => {
      const catalog = asCatalog(raw);
      const plan = planRetention(catalog, { days: 3, preRestoreDays: 7, keep }, now);
      const backups = catalog.filter((e) => e.kind !== 'emergency-pre-restore').sort(byFinishDesc);
      const readable = backups.filter((e) => !e.damaged);
      const latest = backups[0]?.finishedAt ?? 0;
      const expected = new Set<string>();
      const ref = reference(readable.map((e) => e.finishedAt), keep, latest);
      readable.forEach((e, i) => ref.has(i) && expected.add(e.id));
      const damaged = backups.filter((e) => e.damaged);
      const within = reference(damaged.map((e) => e.finishedAt), { text: '', ...(keep.within ? { within: keep.within } : {}) }, latest);
      damaged.forEach((e, i) => within.has(i) && expected.add(e.id));
      for (const e of catalog) if (e.kind === 'emergency-pre-restore' && now - e.finishedAt <= 7 * DAY) expected.add(e.id);
      const byPolicy = new Set(plan.keep.filter((k) => k.reasons.some((r) => POLICY_REASON.test(r))).map((k) => k.id));
      expect([...byPolicy].sort()).toEqual([...expected].sort());
      for (const d of plan.delete) expect(expected.has(d.id)).toBe(false);
    }),
    params,
  );
});

test('the parser accepts what it prints, and names the bad key with the fix', () => {
  fc.assert(
    fc.property(policyArb, (p) => {
      expect(keepPolicy(p.text)).toEqual(p);
    }),
    params,
  );
  const msg = (raw: string) => {
    try {
      keepPolicy(raw);
    } catch (err) {
      expect(err).toBeInstanceOf(Invalid);
      return (err as Error).message;
    }
    throw new Error(`accepted ${raw}`);
  };
  expect(msg('dayly=3')).toMatch(/"dayly" is not a key/);
  expect(msg('daily=0')).toMatch(/daily="0" is not a count: write daily=7 or daily=all/);
  expect(msg('daily=-2')).toMatch(/daily="-2" is not a count/);
  expect(msg('within=3')).toMatch(/within="3" is not a duration/);
  expect(msg('within=0d')).toMatch(/is zero/);
  expect(msg('daily=3,daily=4')).toMatch(/"daily" is given twice/);
  expect(msg('weekly')).toMatch(/"weekly" has no value/);
  expect(msg(' , ')).toMatch(/within=3d or daily=14/);
  expect(keepPolicy(' Daily=14 , weekly=8,monthly=12 ,within=1y6m ').text).toBe('daily=14,weekly=8,monthly=12,within=1y6m');
});

test('restic examples: 10 nightlies at 02:00 with daily=3,weekly=2 and within=2d', () => {
  // Wed 2026-11-11 .. Fri 2026-11-20 (ISO weeks 46 and 47), local time
  const times = Array.from({ length: 10 }, (_, i) => new Date(2026, 10, 20 - i, 2, 0, 0).getTime());
  const r = applyKeepPolicy(times, keepPolicy('daily=3,weekly=2'));
  expect(r.slice(0, 4)).toEqual([['daily 2026-11-20', 'weekly 2026-W47'], ['daily 2026-11-19'], ['daily 2026-11-18'], []]);
  expect(r[5]).toEqual(['weekly 2026-W46']); // Sun 2026-11-15: the newest of week 46
  expect(r.slice(6).every((x) => x.length === 0)).toBe(true); // no count left for the oldest
  // within counts from the newest snapshot, strictly newer than it minus 2 days
  expect(applyKeepPolicy(times, keepPolicy('within=2d')).map((x) => x.length > 0)).toEqual([true, true, false, false, false, false, false, false, false, false]);
  // a count larger than the history keeps the oldest too, as restic does
  expect(applyKeepPolicy(times.slice(0, 3).concat(times[2]! - 3600_000), keepPolicy('daily=10')).at(-1)).toEqual(['daily 2026-11-18 (oldest)']);
});
