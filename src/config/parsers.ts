/**
 * Value parsers for configuration settings. Each throws `Invalid` with what was expected;
 * the loader turns that into one line naming the variable, the (masked) value and its source.
 */
import { isAbsolute } from 'node:path';

export class Invalid extends Error {}

export function int(min: number, max: number) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Invalid(`a whole number from ${min} to ${max}`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw new Invalid(`a whole number from ${min} to ${max}`);
    return n;
  };
}

export function number(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new Invalid(`a number from ${min} to ${max}`);
    return n;
  };
}

export function absPath(raw: string): string {
  const v = raw.trim();
  if (!isAbsolute(v)) throw new Invalid('an absolute path (starting with /)');
  return v.replace(/(.)\/+$/, '$1');
}

/** A switch: 1/true/yes/on or 0/false/no/off. */
export function flag(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new Invalid('1 or 0 (also true/false, yes/no, on/off)');
}

export function text(raw: string): string {
  return raw;
}

export function nonEmpty(raw: string): string {
  if (raw.trim() === '') throw new Invalid('a non-empty value');
  return raw;
}

export function httpUrl(raw: string): string {
  const v = raw.trim();
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new Invalid('an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Invalid('an http:// or https:// URL');
  if (!url.hostname) throw new Invalid('a URL with a host name');
  return v;
}

export function oneOf<T extends string>(...choices: T[]) {
  return (raw: string): T => {
    const v = raw.trim().toLowerCase();
    if (!(choices as string[]).includes(v)) throw new Invalid(`one of ${choices.join(', ')}`);
    return v as T;
  };
}

/** One of `choices`, in any case, returned as spelled in `choices` (AES256, aws:kms, GOVERNANCE...). */
export function choice<T extends string>(...choices: T[]) {
  return (raw: string): T => {
    const v = raw.trim().toLowerCase();
    const found = choices.find((c) => c.toLowerCase() === v);
    if (!found) throw new Invalid(`one of ${choices.join(', ')}`);
    return found;
  };
}

export function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export interface Bucket {
  bucket: string;
  prefix: string;
}

/** `s3://bucket[/prefix]`: bucket names per S3's rules, the prefix without slashes at either end. */
export function s3Bucket(raw: string): Bucket {
  const m = /^s3:\/\/([^/]+)(\/.*)?$/.exec(raw.trim());
  const expected = 's3://bucket-name or s3://bucket-name/prefix';
  if (!m) throw new Invalid(expected);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new Invalid(`${expected} (bucket names are 3-63 lowercase letters, digits, dots and hyphens)`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((p) => p === '.' || p === '..')) throw new Invalid(`${expected} without . or .. in the prefix`);
  return { bucket, prefix };
}

export interface NamedUrl {
  name: string;
  url: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
// Health target names may also start with '_' (`__proto__` is a name like any other there).
const TARGET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export function isValidName(name: string): boolean {
  return TARGET_NAME.test(name);
}

/** `name=url,name=url`: the runbook style for health endpoints and SSE streams. */
export function namedUrls(raw: string): NamedUrl[] {
  const out: NamedUrl[] = [];
  for (const [index, item] of list(raw).entries()) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Invalid(`name=url pairs separated by commas (got an item without "name=")`);
    const name = item.slice(0, eq).trim();
    const url = item.slice(eq + 1).trim();
    // Not quoted back: what stands where a name should be may be a URL with credentials.
    if (!TARGET_NAME.test(name)) throw new Invalid(`names of letters, digits, '.', '_' or '-' (item ${index + 1} is not)`);
    try {
      httpUrl(url);
    } catch {
      throw new Invalid(`an http(s) URL for "${name}"`);
    }
    if (out.some((o) => o.name === name)) throw new Invalid(`unique names ("${name}" appears twice)`);
    out.push({ name, url });
  }
  return out;
}

export interface NamedPath {
  name: string;
  path: string;
}

/** `name=/abs/path,...` for backup sources. */
export function namedPaths(raw: string): NamedPath[] {
  const out: NamedPath[] = [];
  for (const item of list(raw)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Invalid('name=/absolute/path pairs separated by commas');
    const name = item.slice(0, eq).trim();
    const path = item.slice(eq + 1).trim();
    if (!NAME.test(name) || name.startsWith('.')) throw new Invalid(`source names of letters, digits, '.', '_' or '-' ("${name.slice(0, 40)}" is not)`);
    if (!isAbsolute(path)) throw new Invalid(`an absolute path for source "${name}"`);
    if (out.some((o) => o.name === name)) throw new Invalid(`unique source names ("${name}" appears twice)`);
    out.push({ name, path: path.replace(/(.)\/+$/, '$1') });
  }
  if (out.length === 0) throw new Invalid('at least one name=/absolute/path source');
  return out;
}

export function globs(raw: string): string[] {
  const out = list(raw);
  for (const g of out) {
    if (g.startsWith('/')) throw new Invalid(`globs relative to each source ("${g.slice(0, 40)}" starts with /)`);
    if (g.split('/').includes('..')) throw new Invalid(`globs without ".." ("${g.slice(0, 40)}")`);
  }
  return out;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** A size: `50GB`, `1.5 TiB`, `123456` (bytes); decimal units are powers of 1000, binary ones of 1024. */
export function byteSize(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const factor = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || factor === undefined) throw new Invalid('a size such as 50GB, 500MB or 1TiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)');
  const n = Math.round(Number(m[1]) * factor);
  if (!(n > 0)) throw new Invalid('a size above zero, such as 50GB');
  if (!Number.isSafeInteger(n)) throw new Invalid('a size of at most 9 PB (this one is too large), such as 50GB');
  return n;
}
