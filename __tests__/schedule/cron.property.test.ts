/**
 * src/schedule/cron.ts (the next run of a crontab line in UTC, without cron-parser) against
 * cron-parser, the library status used before: fast-check generates crontab schedules in
 * Debian cron's syntax (lists, ranges, steps, `*` with a step, month and day names in any case,
 * 7 for Sunday) and clocks with seconds and milliseconds, and the next run must be cron-parser's.
 * Every generated schedule must be taken (none may fall back to cron-parser). One deliberate
 * difference: a day field that begins with `*` but is not `*` alone (`*` with a step) counts as
 * unrestricted, as Debian's cron does (DOM_STAR/DOW_STAR), where cron-parser counts it as
 * restricted; there the reference is cron-parser's answer for "both day fields must match".
 */
import fc from 'fast-check';
import { CronExpressionParser } from 'cron-parser';
import { nextRunUtc, parseCron } from '../../src/schedule/cron.js';
import { nextRunFrom } from '../../src/schedule/index.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface Spec {
  min: number;
  max: number;
  /** names for values (months from 1, days from 0; day 7 has none) */
  name?: (v: number) => string | undefined;
}
const MINUTE: Spec = { min: 0, max: 59 };
const HOUR: Spec = { min: 0, max: 23 };
const DOM: Spec = { min: 1, max: 31 };
const MONTH: Spec = { min: 1, max: 12, name: (v) => MONTHS[v - 1] };
const DOW: Spec = { min: 0, max: 7, name: (v) => DAYS[v] };

/** A value as a number, or (month, day of week) sometimes as its name in a random case. */
function valueArb(spec: Spec, min = spec.min, max = spec.max): fc.Arbitrary<string> {
  const n = fc.integer({ min, max });
  if (!spec.name) return n.map(String);
  return fc.tuple(n, fc.boolean(), fc.constantFrom('lower', 'upper', 'title')).map(([v, asName, style]) => {
    const name = asName ? spec.name!(v) : undefined;
    if (!name) return String(v);
    return style === 'lower' ? name : style === 'upper' ? name.toUpperCase() : name[0]!.toUpperCase() + name.slice(1);
  });
}

function itemArb(spec: Spec): fc.Arbitrary<string> {
  const step = fc.integer({ min: 1, max: spec.max - spec.min + 2 });
  const range = fc.tuple(fc.integer({ min: spec.min, max: spec.max }), fc.integer({ min: spec.min, max: spec.max })).chain(([a, b]) => {
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    return fc.tuple(valueArb(spec, lo, lo), valueArb(spec, hi, hi)).map(([x, y]) => `${x}-${y}`);
  });
  return fc.oneof(
    { weight: 3, arbitrary: valueArb(spec) },
    { weight: 2, arbitrary: range },
    { weight: 2, arbitrary: fc.tuple(range, step).map(([r, s]) => `${r}/${s}`) },
    { weight: 1, arbitrary: step.map((s) => `*/${s}`) },
  );
}

function fieldArb(spec: Spec, starWeight = 3): fc.Arbitrary<string> {
  return fc.oneof({ weight: starWeight, arbitrary: fc.constant('*') }, { weight: 4, arbitrary: fc.array(itemArb(spec), { minLength: 1, maxLength: 3 }).map((xs) => xs.join(',')) });
}

const expressionArb = fc.tuple(fieldArb(MINUTE, 1), fieldArb(HOUR, 1), fieldArb(DOM), fieldArb(MONTH), fieldArb(DOW)).map((f) => f.join(' '));
const clockArb = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59.999Z'), noInvalidDate: true });

/** cron-parser's next run strictly after `now` in UTC, or undefined when it finds none (it throws). */
function parserNext(expression: string, now: Date): Date | undefined {
  try {
    return CronExpressionParser.parse(expression, { currentDate: now, tz: 'UTC' }).next().toDate();
  } catch {
    return undefined;
  }
}

const FIELD_NAMES = ['minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'] as const;

/**
 * cron-parser refuses a list whose items overlap (`0,0-5`), which cron takes: each list item's
 * values as cron-parser expands it alone, the union written out. A field `*` alone stays `*`.
 */
function withoutOverlaps(expression: string): string {
  return expression
    .split(' ')
    .map((f, k) => {
      if (!f.includes(',')) return f;
      const values = new Set<number>();
      for (const item of f.split(',')) {
        const probe = ['*', '*', '*', '*', '*'];
        probe[k] = item;
        for (const v of CronExpressionParser.parse(probe.join(' '), { tz: 'UTC' }).fields[FIELD_NAMES[k]!].values) values.add(k === 4 ? Number(v) % 7 : Number(v));
      }
      return [...values].sort((a, b) => a - b).join(',');
    })
    .join(' ');
}

/**
 * The reference. cron-parser as is (lists written out without overlaps), except where Debian's cron ANDs the day fields and
 * cron-parser ORs them (both fields other than `*` alone, one beginning with `*`): then the runs
 * of the schedule with day of week `*`, skipped day by day until cron-parser's own day-of-week
 * values take one.
 */
function reference(expression: string, now: Date): Date | undefined {
  const [, , rawDom, , rawDow] = expression.split(' ') as [string, string, string, string, string];
  const plain = withoutOverlaps(expression);
  const [mi, h, dom, mon] = plain.split(' ') as [string, string, string, string, string];
  const cronAnds = rawDom !== '*' && rawDow !== '*' && (rawDom.startsWith('*') || rawDow.startsWith('*'));
  if (!cronAnds) return parserNext(plain, now);
  const days = new Set(CronExpressionParser.parse(plain, { tz: 'UTC' }).fields.dayOfWeek.values.map((d) => Number(d) % 7));
  let at = now;
  for (let i = 0; i < 20_000; i++) {
    const next = parserNext(`${mi} ${h} ${dom} ${mon} *`, at);
    if (!next) return undefined;
    if (days.has(next.getUTCDay())) return next;
    at = new Date(Date.UTC(next.getUTCFullYear(), next.getUTCMonth(), next.getUTCDate() + 1) - 1);
  }
  return undefined;
}

const ours = (expression: string, now: Date): Date | undefined => {
  const s = parseCron(expression);
  if (!s) throw new Error(`not taken: "${expression}"`);
  return nextRunUtc(s, now);
};

test('every generated schedule is taken, and its next run is the reference next run', () => {
  fc.assert(
    fc.property(expressionArb, clockArb, (expression, now) => {
      expect(ours(expression, now)?.toISOString()).toBe(reference(expression, now)?.toISOString());
    }),
    { numRuns: 1000 },
  );
});

test('the next run of a run is the run after it: five runs in a row agree', () => {
  fc.assert(
    fc.property(expressionArb, clockArb, (expression, now) => {
      let at = now;
      for (let i = 0; i < 5; i++) {
        const next = ours(expression, at);
        expect(next?.toISOString()).toBe(reference(expression, at)?.toISOString());
        if (!next) return;
        at = next;
      }
    }),
    { numRuns: 200 },
  );
});

const at = (iso: string) => new Date(iso);
const next = (expression: string, now: string) => ours(expression, at(now))?.toISOString();

test.each([
  ['the 29th of February: the next leap year', '0 0 29 2 *', '2026-11-26T03:00:00Z', '2028-02-29T00:00:00.000Z'],
  ['the 29th of February across 2100, which is not a leap year', '0 0 29 2 *', '2096-03-01T00:00:00Z', '2104-02-29T00:00:00.000Z'],
  ['the 29th of February on a Sunday (`*/7`: both day fields must match): 40 years on, across 2100', '0 0 29 2 */7', '2088-03-01T00:00:00Z', '2128-02-29T00:00:00.000Z'],
  ['the 31st: months without one are skipped', '30 12 31 * *', '2026-04-01T00:00:00Z', '2026-05-31T12:30:00.000Z'],
  ['day of month and day of week both restricted: either (the 13th or a Friday)', '0 9 13 * 5', '2026-11-26T10:00:00Z', '2026-11-27T09:00:00.000Z'],
  ['...and the 13th when it comes first', '0 9 13 * 5', '2026-12-12T10:00:00Z', '2026-12-13T09:00:00.000Z'],
  ['a step on a range', '10-40/15 1-5/2 * * *', '2026-11-26T03:41:00Z', '2026-11-26T05:10:00.000Z'],
  ['...to the next day after the last one', '10-40/15 1-5/2 * * *', '2026-11-26T05:40:00Z', '2026-11-27T01:10:00.000Z'],
  ['7 is Sunday', '0 0 * * 7', '2026-11-26T00:00:00Z', '2026-11-29T00:00:00.000Z'],
  ['a range up to 7 takes Sunday', '0 0 * * 6-7', '2026-11-29T00:00:00Z', '2026-12-05T00:00:00.000Z'],
  ['names in any case, in a range', '0 6 * NOV-dec Mon', '2026-11-26T00:00:00Z', '2026-11-30T06:00:00.000Z'],
  ['a clock on a run minute: the next one, not this one', '*/5 * * * *', '2026-11-26T03:05:00.000Z', '2026-11-26T03:10:00.000Z'],
  ['a clock just before a run minute', '*/5 * * * *', '2026-11-26T03:04:59.999Z', '2026-11-26T03:05:00.000Z'],
  ['a step from `*` on a day field counts as unrestricted, as cron has it: odd days that are Mondays', '0 0 */2 * 1', '2026-11-26T00:00:00Z', '2026-12-07T00:00:00.000Z'],
  ['the 30th of February never comes', '0 0 30 2 *', '2026-11-26T00:00:00Z', undefined],
])('%s: "%s" after %s', (_what, expression, now, expected) => {
  expect(next(expression, now)).toBe(expected);
});

test('the step-on-a-day-field case is where cron and cron-parser part: cron-parser ORs (a run on the 27th, an odd day)', () => {
  expect(parserNext('0 0 */2 * 1', at('2026-11-26T00:00:00Z'))?.toISOString()).toBe('2026-11-27T00:00:00.000Z');
});

test.each([['0 0 L * *'], ['0 0 15W * *'], ['0 0 * * 5#2'], ['0 0 ? * *'], ['H * * * *'], ['5/15 * * * *'], ['0 0 * * * *'], ['60 * * * *'], ['0 0 0 * *'], ['0 0 * 13 *'], ['0 0 * * 8'], ['5-1 * * * *'], ['*/0 * * * *'], ['1,,2 * * * *'], ['0 0 * * monday']])(
  'cron-parser extensions and bad fields are not taken here: "%s"',
  (expression) => {
    expect(parseCron(expression)).toBeUndefined();
  },
);

describe('nextRunFrom', () => {
  const now = at('2026-11-26T03:00:30Z');
  test('UTC (unset, UTC, Etc/UTC) gives the same time as cron-parser', async () => {
    for (const head of ['', 'CRON_TZ=UTC\n', 'TZ=Etc/UTC\n']) {
      const n = await nextRunFrom(`${head}*/5 * * * * /app/health-monitor.sh once\n`, 'health checks', /health-monitor/, now);
      expect(n).toEqual({ job: 'health checks', expression: '*/5 * * * *', next: '2026-11-26T03:05:00.000Z', inMs: 270_000 });
    }
  });
  test('another time zone goes to cron-parser (03:00 in Berlin is 02:00 UTC in winter)', async () => {
    const n = await nextRunFrom('CRON_TZ=Europe/Berlin\n0 3 * * * /app/backup.sh nightly\n', 'nightly', /backup\.sh nightly/, now);
    expect(n.next).toBe('2026-11-27T02:00:00.000Z');
  });
  test('a step on a day field: the day cron runs it (cron-parser said the 27th)', async () => {
    const n = await nextRunFrom('0 3 */2 * 1 /app/backup.sh nightly\n', 'nightly', /backup\.sh nightly/, now);
    expect(n.next).toBe('2026-12-07T03:00:00.000Z');
  });
  test('overlapping list items, which cron takes: a time, where cron-parser refused the line', async () => {
    const n = await nextRunFrom('0,0-10/5 3 * * * /app/backup.sh nightly\n', 'nightly', /backup\.sh nightly/, now);
    expect(n.next).toBe('2026-11-26T03:05:00.000Z');
  });
  test("a schedule only cron-parser takes still gets its time (L: the month's last day)", async () => {
    const n = await nextRunFrom('0 3 L * * /app/backup.sh nightly\n', 'nightly', /backup\.sh nightly/, now);
    expect(n.next).toBe('2026-11-30T03:00:00.000Z');
  });
  test('a schedule nobody takes is a warning naming it', async () => {
    const n = await nextRunFrom('0 3 32 * * /app/backup.sh nightly\n', 'nightly', /backup\.sh nightly/, now);
    expect(n).toEqual({ job: 'nightly', expression: '0 3 32 * *', warning: 'the crontab line for nightly has an invalid schedule "0 3 32 * *"' });
  });
  test('the 30th of February: no time, as before (cron-parser finds none either)', async () => {
    const n = await nextRunFrom('0 3 30 2 * /app/backup.sh nightly\n', 'nightly', /backup\.sh nightly/, now);
    expect(n.warning).toMatch(/invalid schedule/);
  });
});
