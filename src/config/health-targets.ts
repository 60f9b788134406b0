/**
 * Health targets: the runbook-style `HEALTH_ENDPOINTS` / `HEALTH_SSE_STREAMS` lists plus an
 * optional JSON file (`HEALTH_CONFIG`) for per-target settings. Validated here, at load,
 * with errors that name the target and the key.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, errnoCode } from '../errors.js';
import { httpUrl, Invalid, isValidName, type NamedUrl } from './parsers.js';

export type TargetKind = 'http' | 'sse';

export interface HealthTarget {
  name: string;
  kind: TargetKind;
  url: string;
  timeoutMs: number;
  /** Accepted statuses; empty means any 2xx. */
  expectStatus: number[];
  latencyWarnMs: number;
  /** Sent with every request; values are secrets (tokens) and are never printed. */
  headers: Record<string, string>;
  firstEventTimeoutMs: number;
  observeMs: number;
  maxGapMs: number | undefined;
  /** SSE: bytes allowed without a complete frame (memory bound). */
  maxFrameBytes: number;
}

export interface TargetDefaults {
  timeoutMs: number;
  latencyWarnMs: number;
  firstEventTimeoutMs: number;
  observeMs: number;
  maxGapMs: number | undefined;
  maxFrameBytes: number;
}

const FILE_KEYS = new Set(['name', 'kind', 'url', 'timeoutMs', 'expectStatus', 'latencyWarnMs', 'headers', 'firstEventTimeoutMs', 'observeMs', 'maxGapMs', 'maxFrameBytes']);

/** Names of l2health's own checks in `once` runs. */
export const BUILT_IN_NAMES = new Set(['alert-buffer', 'backup']);

function fromList(items: NamedUrl[], kind: TargetKind, d: TargetDefaults): HealthTarget[] {
  return items.map((i) => ({ name: i.name, kind, url: i.url, expectStatus: [], headers: {}, ...d }));
}

export function buildTargets(endpoints: NamedUrl[], streams: NamedUrl[], configFile: string | undefined, d: TargetDefaults): HealthTarget[] {
  const targets = [...fromList(endpoints, 'http', d), ...fromList(streams, 'sse', d)];
  const seen = new Map<string, string>();
  const add = (t: HealthTarget, where: string) => {
    // The built-in checks keep their state under these names: a target of the same name would share it.
    if (BUILT_IN_NAMES.has(t.name)) throw new ConfigError(`health target "${t.name}" (${where}) has the name of a built-in check (${[...BUILT_IN_NAMES].join(', ')}); rename it`);
    const before = seen.get(t.name);
    if (before) throw new ConfigError(`health target "${t.name}" is defined twice (${before} and ${where}); give each target a unique name`);
    seen.set(t.name, where);
  };
  for (const t of targets) add(t, t.kind === 'http' ? 'HEALTH_ENDPOINTS' : 'HEALTH_SSE_STREAMS');
  if (configFile) {
    for (const t of readConfigFile(configFile, d)) {
      add(t, configFile);
      targets.push(t);
    }
  }
  return targets;
}

function readConfigFile(file: string, d: TargetDefaults): HealthTarget[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new ConfigError(`HEALTH_CONFIG="${file}": no such file; create it or unset HEALTH_CONFIG`);
    if (code) throw new ConfigError(`HEALTH_CONFIG="${file}" cannot be read (${code}); fix its permissions or unset HEALTH_CONFIG`);
    throw new ConfigError(`HEALTH_CONFIG="${file}" is not valid JSON; expected {"targets": [{"name": ..., "kind": "http"|"sse", "url": ...}]}`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { targets?: unknown } | null)?.targets;
  if (!Array.isArray(list)) throw new ConfigError(`HEALTH_CONFIG="${file}": expected {"targets": [...]} with a list of targets`);
  return list.map((item, i) => parseTarget(item, `${file} targets[${i}]`, d));
}

function parseTarget(item: unknown, where: string, d: TargetDefaults): HealthTarget {
  if (!item || typeof item !== 'object' || Array.isArray(item)) throw new ConfigError(`${where}: expected an object with name, kind and url`);
  const o = item as Record<string, unknown>;
  const name = typeof o.name === 'string' ? o.name : '';
  const at = isValidName(name) ? `health target "${name}" (${where})` : where;
  const fail = (key: string, expected: string): never => {
    throw new ConfigError(`${at}: "${key}" must be ${expected}`);
  };
  if (!isValidName(name)) fail('name', "letters, digits, '.', '_' or '-'");
  for (const key of Object.keys(o)) if (!FILE_KEYS.has(key)) fail(key, `one of the known keys (${[...FILE_KEYS].join(', ')}); remove it`);
  const kind = o.kind ?? 'http';
  if (kind !== 'http' && kind !== 'sse') fail('kind', '"http" or "sse"');
  if (typeof o.url !== 'string') fail('url', 'an http(s) URL');
  try {
    httpUrl(o.url as string);
  } catch (err) {
    if (err instanceof Invalid) fail('url', 'an http(s) URL');
    throw err;
  }
  const ms = (key: string, dflt: number, min = 1, max = 600_000, unit = 'milliseconds'): number => {
    const v = o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(key, `a whole number of ${unit} from ${min} to ${max}`);
    return v as number;
  };
  let expectStatus: number[] = [];
  if (o.expectStatus !== undefined) {
    const arr = Array.isArray(o.expectStatus) ? o.expectStatus : [o.expectStatus];
    if (arr.length === 0 || arr.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 100 || s > 599)) fail('expectStatus', 'an HTTP status or a list of them (100-599)');
    expectStatus = arr as number[];
  }
  const headers: Record<string, string> = {};
  if (o.headers !== undefined) {
    if (!o.headers || typeof o.headers !== 'object' || Array.isArray(o.headers)) fail('headers', 'an object of header names to string values');
    for (const [k, v] of Object.entries(o.headers as object)) {
      if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(k)) fail('headers', `valid header names ("${k.slice(0, 40)}" is not)`);
      // What node's HTTP client accepts in a header value: tab, printable ASCII and Latin-1 bytes.
      if (typeof v !== 'string' || /[^\t\x20-\x7e\x80-\xff]/.test(v)) fail('headers', `string values without line breaks or control characters (header "${k}")`);
      headers[k] = v as string;
    }
  }
  const timeoutMs = ms('timeoutMs', d.timeoutMs);
  const maxGap = o.maxGapMs === undefined ? d.maxGapMs : ms('maxGapMs', 0);
  return {
    name,
    kind: kind as TargetKind,
    url: o.url as string,
    timeoutMs,
    expectStatus,
    latencyWarnMs: ms('latencyWarnMs', d.latencyWarnMs),
    headers,
    firstEventTimeoutMs: ms('firstEventTimeoutMs', d.firstEventTimeoutMs),
    observeMs: ms('observeMs', d.observeMs, 0),
    maxGapMs: maxGap,
    maxFrameBytes: ms('maxFrameBytes', d.maxFrameBytes, 1024, 1_073_741_824, 'bytes'),
  };
}
