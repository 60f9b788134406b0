/**
 * BACKUP_LOCAL_KEEP / BACKUP_REMOTE_KEEP: retention policies in the style of restic's
 * `forget --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly/--keep-within`.
 * Syntax: comma-separated `key=value` rules, e.g. `within=3d` or `daily=14,weekly=8,monthly=12`.
 * Counts are whole numbers from 1 up, or `all` (restic's -1: every bucket). `within` takes
 * restic's duration: a sequence of <n>y, <n>m, <n>d, <n>h (e.g. 3d, 1y6m, 36h).
 * The semantics live in src/backup/keep.ts; this module only parses (at config load).
 */
import { Invalid } from './parsers.js';

export const COUNT_KEYS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type CountKey = (typeof COUNT_KEYS)[number];

/** restic's Duration: calendar years, months, days and hours (applied with AddDate, then hours). */
export interface KeepDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export type KeepPolicy = Partial<Record<CountKey, number>> & {
  within?: KeepDuration;
  /** the policy as written (normalised), for messages: "daily=14,weekly=8" */
  text: string;
};

const FIX = 'comma-separated rules such as within=3d or daily=14,weekly=8,monthly=12 (keys: last, hourly, daily, weekly, monthly, yearly: a count from 1 or "all"; within: a duration like 3d, 36h, 1y6m)';

export function parseDuration(raw: string): KeepDuration {
  const v = raw.trim();
  const d: KeepDuration = { years: 0, months: 0, days: 0, hours: 0 };
  if (!/^(\d+[ymdh])+$/.test(v)) throw new Invalid(`${FIX}; within="${v.slice(0, 20)}" is not a duration: write e.g. within=3d`);
  const units: Record<string, keyof KeepDuration> = { y: 'years', m: 'months', d: 'days', h: 'hours' };
  for (const m of v.matchAll(/(\d+)([ymdh])/g)) {
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n) || n > 100_000) throw new Invalid(`${FIX}; within="${v.slice(0, 20)}" is too large`);
    d[units[m[2]!]!] += n;
  }
  if (d.years + d.months + d.days + d.hours === 0) throw new Invalid(`${FIX}; within="${v}" is zero: give a length such as within=3d`);
  return d;
}

export const formatDuration = (d: KeepDuration) => `${d.years ? `${d.years}y` : ''}${d.months ? `${d.months}m` : ''}${d.days ? `${d.days}d` : ''}${d.hours ? `${d.hours}h` : ''}`;

/** Parses a policy; throws Invalid naming the bad rule and how to write it. */
export function keepPolicy(raw: string): KeepPolicy {
  const rules = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (rules.length === 0) throw new Invalid(FIX);
  const policy: KeepPolicy = { text: '' };
  const seen = new Set<string>();
  for (const rule of rules) {
    const eq = rule.indexOf('=');
    const key = (eq < 0 ? rule : rule.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : rule.slice(eq + 1).trim();
    if (key !== 'within' && !(COUNT_KEYS as readonly string[]).includes(key)) throw new Invalid(`${FIX}; "${key.slice(0, 20)}" is not a key`);
    if (eq < 0 || value === '') throw new Invalid(`${FIX}; "${key}" has no value: write ${key}=${key === 'within' ? '3d' : '7'}`);
    if (seen.has(key)) throw new Invalid(`${FIX}; "${key}" is given twice: keep one`);
    seen.add(key);
    if (key === 'within') {
      policy.within = parseDuration(value);
      continue;
    }
    if (value.toLowerCase() === 'all') policy[key as CountKey] = -1;
    else if (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= 1_000_000) policy[key as CountKey] = Number(value);
    else throw new Invalid(`${FIX}; ${key}="${value.slice(0, 20)}" is not a count: write ${key}=7 or ${key}=all`);
  }
  const parts = COUNT_KEYS.filter((k) => policy[k] !== undefined).map((k) => `${k}=${policy[k] === -1 ? 'all' : policy[k]}`);
  if (policy.within) parts.push(`within=${formatDuration(policy.within)}`);
  policy.text = parts.join(',');
  return policy;
}
