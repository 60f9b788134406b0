/**
 * The next run of a 5-field crontab schedule in UTC, as Vixie cron (Debian's cron) runs it:
 * minute hour day-of-month month day-of-week, each a list of `*`, numbers and ranges, a range
 * or `*` optionally with a /step; month and day names (jan, mon...) in any case; 7 is Sunday.
 * When both day fields are restricted a day matches if either does; a day field that begins
 * with `*` (`*`, `*` with a step) counts as unrestricted, as in cron's DOM_STAR/DOW_STAR flags.
 *
 * Why not cron-parser: status commands start often, and cron-parser brings luxon (~250 KB of
 * CommonJS) and its locale set-up, most of the start-up of `l2backup status` (issue 14).
 * src/schedule still uses cron-parser for a schedule this module does not accept (its
 * extensions: L, W, #, ?, H, a single value with a step) and for a time zone other than UTC.
 * __tests__/schedule/cron.property.test.ts checks this module against cron-parser.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  min: number;
  max: number;
  /** name -> value (month and day-of-week fields) */
  names?: readonly string[];
  /** first value the names stand for */
  nameBase?: number;
}

const MINUTE: FieldSpec = { min: 0, max: 59 };
const HOUR: FieldSpec = { min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { min: 1, max: 31 };
const MONTH: FieldSpec = { min: 1, max: 12, names: MONTHS, nameBase: 1 };
const DAY_OF_WEEK: FieldSpec = { min: 0, max: 7, names: DAYS, nameBase: 0 };

export interface CronSchedule {
  /** allowed[value] for each field; day of week folded to 0-6 */
  minute: boolean[];
  hour: boolean[];
  dayOfMonth: boolean[];
  month: boolean[];
  dayOfWeek: boolean[];
  /** the day field begins with `*` (cron's DOM_STAR / DOW_STAR) */
  dayOfMonthStar: boolean;
  dayOfWeekStar: boolean;
}

function value(text: string, spec: FieldSpec): number | undefined {
  if (/^\d{1,2}$/.test(text)) {
    const n = Number(text);
    return n >= spec.min && n <= spec.max ? n : undefined;
  }
  const i = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  return i < 0 ? undefined : i + spec.nameBase!;
}

/** One field: allowed values, or undefined when it is not plain Vixie syntax or out of range. */
function field(text: string, spec: FieldSpec): boolean[] | undefined {
  const allowed = new Array<boolean>(spec.max + 1).fill(false);
  for (const item of text.split(',')) {
    const m = /^(\*|[0-9a-zA-Z]+(?:-[0-9a-zA-Z]+)?)(?:\/(\d{1,2}))?$/.exec(item);
    if (!m) return undefined;
    const [, range, stepText] = m;
    let first = spec.min;
    let last = spec.max;
    if (range !== '*') {
      const [a, b] = range!.split('-');
      const lo = value(a!, spec);
      const hi = b === undefined ? lo : value(b, spec);
      if (lo === undefined || hi === undefined || lo > hi) return undefined;
      // A single value with a step (`5/15`) is cron-parser's extension, not cron's.
      if (b === undefined && stepText !== undefined) return undefined;
      first = lo;
      last = hi;
    }
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) return undefined;
    for (let v = first; v <= last; v += step) allowed[v] = true;
  }
  return allowed;
}

/** Parses a 5-field schedule; undefined when it is not one this module evaluates. */
export function parseCron(expression: string): CronSchedule | undefined {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) return undefined;
  const [mi, h, dom, mon, dow] = parts as [string, string, string, string, string];
  const minute = field(mi, MINUTE);
  const hour = field(h, HOUR);
  const dayOfMonth = field(dom, DAY_OF_MONTH);
  const month = field(mon, MONTH);
  const dayOfWeek = field(dow, DAY_OF_WEEK);
  if (!minute || !hour || !dayOfMonth || !month || !dayOfWeek) return undefined;
  if (dayOfWeek[7]) dayOfWeek[0] = true;
  return { minute, hour, dayOfMonth, month, dayOfWeek: dayOfWeek.slice(0, 7), dayOfMonthStar: dom.startsWith('*'), dayOfWeekStar: dow.startsWith('*') };
}

function dayMatches(s: CronSchedule, date: Date): boolean {
  const dom = s.dayOfMonth[date.getUTCDate()]!;
  const dow = s.dayOfWeek[date.getUTCDay()]!;
  return s.dayOfMonthStar || s.dayOfWeekStar ? dom && dow : dom || dow;
}

/** Days in each month, February in a leap year. */
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Whether the schedule ever runs. With either day field matching (both restricted) every month
 * has the weekdays; with both having to match, some allowed month must have an allowed day
 * (every date falls on every weekday over the years).
 */
function everRuns(s: CronSchedule): boolean {
  if (!(s.dayOfMonthStar || s.dayOfWeekStar)) return true;
  return MONTH_DAYS.some((days, m) => s.month[m + 1] && s.dayOfMonth.some((allowed, d) => allowed && d <= days));
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/**
 * How far ahead to look. A schedule that runs at all runs within this: the rarest, the 29th
 * of February on one weekday, comes up to 40 years apart (across a century that is not leap).
 */
const HORIZON_DAYS = 50 * 366;

/**
 * The first minute strictly after `after` (UTC) at which the schedule runs, as cron-parser's
 * next() gives it; undefined when it never runs (the 30th of February).
 */
export function nextRunUtc(s: CronSchedule, after: Date): Date | undefined {
  if (!everRuns(s)) return undefined;
  const start = Math.floor(after.getTime() / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  let day = Math.floor(start / DAY_MS) * DAY_MS;
  let fromMinute = (start - day) / MINUTE_MS;
  for (let i = 0; i <= HORIZON_DAYS; i++, day += DAY_MS, fromMinute = 0) {
    const date = new Date(day);
    if (!s.month[date.getUTCMonth() + 1] || !dayMatches(s, date)) continue;
    const fromHour = Math.floor(fromMinute / 60);
    for (let h = fromHour; h < 24; h++) {
      if (!s.hour[h]) continue;
      for (let m = h === fromHour ? fromMinute % 60 : 0; m < 60; m++) {
        if (s.minute[m]) return new Date(day + (h * 60 + m) * MINUTE_MS);
      }
    }
  }
  return undefined;
}
