/**
 * The retention planner and "latest" are pure functions of (catalog, policy, now): checked here
 * over any catalog and any clock with fast-check (seeded and shrinking; the seed is printed on
 * failure).
 */
import fc from 'fast-check';
import { planRetention } from '../../src/backup/retention.js';
import { byFinishDesc, catalogEntry, latestOf, baseOf, type Catalog, type CatalogEntry } from '../../src/backup/catalog.js';
import { idFor } from '../../src/backup/layout.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2025, 9, 3, 2, 0, 0);
const SOURCES = ['models', 'logs', 'reports', 'configs'] as const;

const entryArb = fc.record({
  kind: fc.constantFrom('nightly', 'snapshot', 'emergency-pre-restore' as const),
  // finish times spread over ±60 days around T0, to the second
  finishedAt: fc.integer({ min: -60 * 86_400, max: 60 * 86_400 }).map((s) => T0 + s * 1000),
  sources: fc.dictionary(fc.constantFrom(...SOURCES), fc.constantFrom('complete', 'partial' as const), { minKeys: 0, maxKeys: 4 }),
  remote: fc.constantFrom('none', 'pending', 'uploaded', 'skipped' as const),
  damaged: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
});

/** Ids are unique; they need not sort like the finish times (the clock may have jumped). */
const catalogArb: fc.Arbitrary<Catalog> = fc.uniqueArray(fc.integer({ min: 0, max: 400_000 }), { maxLength: 25 }).chain((idSecs) =>
  fc.tuple(...idSecs.map(() => entryArb)).map((entries) =>
    entries.map((e, i) => ({ id: idFor(T0 - 200_000_000 + idSecs[i]! * 1000), ...e, ...(e.damaged ? { damaged: true } : { damaged: undefined }) }) as CatalogEntry),
  ),
);

const policyArb = fc.record({ days: fc.integer({ min: 0, max: 40 }), preRestoreDays: fc.integer({ min: 0, max: 40 }) });
const nowArb = fc.integer({ min: -70 * 86_400, max: 70 * 86_400 }).map((s) => T0 + s * 1000);

const params = { numRuns: 3000 };
const isBackup = (e: CatalogEntry) => e.kind !== 'emergency-pre-restore';

test('every id is either kept or deleted, never both', () => {
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, (catalog, policy, now) => {
      const plan = planRetention(catalog, policy, now);
      const del = plan.delete.map((d) => d.id);
      const keep = plan.keep.map((k) => k.id);
      expect(new Set([...del, ...keep]).size).toBe(catalog.length);
      expect(del.length + keep.length).toBe(catalog.length);
    }),
    params,
  );
});

test('for any catalog and clock, every source keeps its newest complete copy', () => {
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, (catalog, policy, now) => {
      const plan = planRetention(catalog, policy, now);
      const deleted = new Set(plan.delete.map((d) => d.id));
      for (const s of SOURCES) {
        const newest = catalog.filter((e) => isBackup(e) && !e.damaged && e.sources[s] === 'complete').sort(byFinishDesc)[0];
        if (newest) expect(deleted.has(newest.id)).toBe(false);
      }
    }),
    params,
  );
});

test('pending uploads are never deleted', () => {
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, (catalog, policy, now) => {
      const plan = planRetention(catalog, policy, now);
      const pending = new Set(catalog.filter((e) => e.remote === 'pending').map((e) => e.id));
      for (const d of plan.delete) expect(pending.has(d.id)).toBe(false);
    }),
    params,
  );
});

test('a snapshot from the future (the clock jumped back) makes prune refuse, with a warning', () => {
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, (catalog, policy, now) => {
      const plan = planRetention(catalog, policy, now);
      const future = catalog.some((e) => e.finishedAt > now);
      expect(Boolean(plan.refused)).toBe(future);
      if (future) {
        expect(plan.delete).toEqual([]);
        expect(plan.refused).toMatch(/later than now.*clock/);
      }
    }),
    params,
  );
});

test('nothing younger than its retention is deleted, and only whole days count', () => {
  fc.assert(
    fc.property(catalogArb, policyArb, nowArb, (catalog, policy, now) => {
      const plan = planRetention(catalog, policy, now);
      const byId = new Map(catalog.map((e) => [e.id, e]));
      for (const d of plan.delete) {
        const e = byId.get(d.id)!;
        const days = isBackup(e) ? policy.days : policy.preRestoreDays;
        expect(now - e.finishedAt).toBeGreaterThan(days * DAY);
      }
    }),
    params,
  );
});

test('"latest" is the newest complete nightly/snapshot by finish time: never a capture, never one from the future while another exists', () => {
  fc.assert(
    fc.property(catalogArb, nowArb, (catalog, now) => {
      const latest = latestOf(catalog, now);
      const backups = catalog.filter((e) => isBackup(e) && !e.damaged);
      if (backups.length === 0) return expect(latest).toBeUndefined();
      expect(latest).toBeDefined();
      expect(latest!.kind).not.toBe('emergency-pre-restore');
      // Complete before partial; within each, the present before the future; then the newest.
      const present = backups.filter((e) => e.finishedAt <= now);
      const isComplete = (e: CatalogEntry) => Object.values(e.sources).every((s) => s === 'complete');
      const tiers = [present.filter(isComplete), backups.filter(isComplete), present, backups];
      const expected = tiers.find((t) => t.length)!.sort(byFinishDesc)[0];
      expect(latest!.id).toBe(expected!.id);
      // The plan never deletes "latest".
      expect(planRetention(catalog, { days: 0, preRestoreDays: 0 }, now).delete.map((d) => d.id)).not.toContain(latest!.id);
    }),
    params,
  );
});

test('"latest" for given sources holds each of them complete', () => {
  fc.assert(
    fc.property(catalogArb, nowArb, fc.subarray([...SOURCES], { minLength: 1 }), (catalog, now, wanted) => {
      const latest = latestOf(catalog, now, wanted);
      if (latest) for (const s of wanted) expect(latest.sources[s]).toBe('complete');
      else {
        const backups = catalog.filter((e) => isBackup(e) && !e.damaged);
        expect(backups.some((e) => wanted.every((s) => e.sources[s] === 'complete'))).toBe(false);
      }
    }),
    params,
  );
});

test('the base of the next snapshot is never from the future or a capture', () => {
  fc.assert(
    fc.property(catalogArb, nowArb, (catalog, now) => {
      const base = baseOf(catalog, now);
      if (base) {
        expect(base.finishedAt).toBeLessThanOrEqual(now);
        expect(base.kind).not.toBe('emergency-pre-restore');
      }
    }),
    params,
  );
});

test('a snapshot the uploader found damaged (skipped) is never the link base: its damage would spread', () => {
  const mk = (days: number) => ({ ...catalogEntry(idFor(T0 - days * DAY), undefined, 'pending'), kind: 'nightly' as const, finishedAt: T0 - days * DAY, damaged: undefined, sources: { models: 'complete' as const } });
  const older = mk(2);
  const skipped = { ...mk(1), remote: 'skipped' as const, unuploadable: true };
  expect(baseOf([older, skipped], T0)?.id).toBe(older.id);
  expect(baseOf([skipped], T0)).toBeUndefined();
});

// The cases that lost data before, named.
test('a models mount missing for three nights does not cost the last copy of the models', () => {
  const mk = (days: number, models: boolean) => ({ ...catalogEntry(idFor(T0 - days * DAY), undefined, 'uploaded'), kind: 'nightly' as const, finishedAt: T0 - days * DAY, damaged: undefined, sources: { models: models ? ('complete' as const) : ('partial' as const), logs: 'complete' as const } });
  const catalog = [mk(10, true), mk(3, false), mk(2, false), mk(1, false)];
  const plan = planRetention(catalog, { days: 2, preRestoreDays: 7 }, T0);
  expect(plan.keep.find((k) => k.id === catalog[0]!.id)?.why).toBe('newest complete copy of models');
  expect(plan.delete.map((d) => d.id)).toEqual([catalog[1]!.id]);
});

test('a capture is never "latest", even the newest one uploaded', () => {
  const nightly = { id: idFor(T0 - DAY), kind: 'nightly' as const, finishedAt: T0 - DAY, sources: { models: 'complete' as const }, remote: 'uploaded' as const };
  const capture = { id: idFor(T0 - 1000), kind: 'emergency-pre-restore' as const, finishedAt: T0 - 1000, sources: { models: 'complete' as const }, remote: 'uploaded' as const };
  expect(latestOf([nightly, capture], T0)?.id).toBe(nightly.id);
});
