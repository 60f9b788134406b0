/**
 * Reads what the status page shows from the volume's state files, and nothing else (the one
 * exception: the installed crontab, for the next runs), so it also works on a copy of a volume
 * taken from a broken host, with the sources and the remote out of reach.
 * Read-only and forgiving: it never renames, rebuilds or writes state (the programs that own a
 * file do that), never follows a symlink, reads only the tail of a long file, and turns every
 * unreadable or malformed file into a line on the page instead of an error.
 * Backup and health formats are both read here; neither of those modules imports the other.
 */
import { constants as C, promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { openState } from '../state/files.js';
import { statePaths } from '../state/paths.js';
import { errnoCode, errorMessage } from '../errors.js';
import { MANIFEST, PRE_RESTORE_DIR, isSnapshotId } from '../backup/layout.js';
import type { RawAlert, RawDead, RawNextRun, RawRecord, RawRemote, RawRun, RawSnapshot, RawState, RawTarget } from './model.js';

export interface GatherInput {
  root: string;
  alertBufferFile: string;
  remoteUrl?: string;
  /** the crontab's text; undefined: read with `crontab -l` */
  crontab?: string | null;
}

/** Files other modules may write (not agreed with them): the first that exists is shown. */
export const FORECAST_FILES = ['backup/forecast.json', 'backup/storage-forecast.json', 'backup/storage.json', 'backup/cost.json'];
export const DRILL_FILES = ['backup/last-drill.json', 'backup/drill.json', 'drill/last.json', 'drill.json', 'backup/drills/'];

const TAIL_BYTES = 512 * 1024;
const SMALL_BYTES = 4 * 1024 * 1024;

type Problems = string[];

/** A file's text (its last `max` bytes when longer, from a line start); undefined when absent. */
async function readText(path: string, problems: Problems, max = SMALL_BYTES): Promise<string | undefined> {
  let handle;
  try {
    handle = await openState(path, C.O_RDONLY);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') problems.push(`${path}: ${errorMessage(err)}`);
    return undefined;
  }
  try {
    const size = (await handle.stat()).size;
    const start = Math.max(0, size - max);
    const buf = Buffer.alloc(size - start);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const text = buf.subarray(0, got).toString('utf8');
    return start > 0 ? text.slice(text.indexOf('\n') + 1) : text;
  } catch (err) {
    problems.push(`${path}: cannot be read (${errnoCode(err) ?? errorMessage(err)})`);
    return undefined;
  } finally {
    await handle.close().catch(() => {});
  }
}

async function readJson(path: string, problems: Problems): Promise<unknown> {
  const text = await readText(path, problems);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    problems.push(`${path}: not valid JSON (skipped)`);
    return undefined;
  }
}

/** Whole JSON lines of a file's tail; torn or foreign lines are skipped. */
async function readLines(path: string, problems: Problems, max = TAIL_BYTES): Promise<Record<string, unknown>[]> {
  const text = await readText(path, problems, max);
  const out: Record<string, unknown>[] = [];
  for (const line of (text ?? '').split('\n')) {
    if (!line.trim()) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (isObject(v)) out.push(v);
    } catch {
      // a torn last line, or a line set aside by its owner later: not ours to judge
    }
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

async function names(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

async function snapshots(root: string, problems: Problems): Promise<RawSnapshot[]> {
  const out: RawSnapshot[] = [];
  for (const [parent, preRestore] of [
    [root, false],
    [join(root, PRE_RESTORE_DIR), true],
  ] as const) {
    for (const id of (await names(parent)).filter(isSnapshotId)) {
      const m = await readJson(join(parent, id, MANIFEST), problems);
      if (m === undefined) continue; // a folder without a manifest is not a complete snapshot
      if (!isObject(m)) continue;
      const totals = isObject(m.totals) ? m.totals : {};
      const sources = Array.isArray(m.sources) ? m.sources : [];
      out.push({
        id,
        kind: str(m.kind) ?? '?',
        preRestore,
        files: num(totals.files),
        bytes: num(totals.bytes),
        newBytes: num(totals.newBytes),
        finishedAt: str(m.finishedAt),
        partial: sources.some((s) => isObject(s) && s.status !== 'ok'),
      });
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

async function remoteRecords(dir: string, problems: Problems): Promise<RawRemote[]> {
  const out: RawRemote[] = [];
  for (const name of (await names(dir)).filter((n) => /^\d{8}-\d{6}\.json$/.test(n))) {
    const v = await readJson(join(dir, name), problems);
    if (!isObject(v) || typeof v.state !== 'string') continue;
    out.push({ id: name.slice(0, -5), state: v.state, uploadedAt: str(v.uploadedAt), bytesSent: num(v.bytesSent), lastError: str(v.lastError), attempts: num(v.attempts) });
  }
  return out;
}

function rawTarget(name: string, v: unknown): RawTarget | undefined {
  if (!isObject(v)) return undefined;
  const pairs = (a: unknown): [number, number][] => (Array.isArray(a) ? a.filter((h): h is [number, number] => Array.isArray(h) && typeof h[0] === 'number' && typeof h[1] === 'number').map((h) => [h[0], h[1]]) : []);
  return {
    name,
    kind: str(v.kind),
    status: str(v.status),
    since: str(v.since),
    lastCheckAt: str(v.lastCheckAt),
    lastLatencyMs: num(v.lastLatencyMs),
    lastError: str(v.lastError),
    history: pairs(v.history),
    latency: pairs(v.latency),
  };
}

function rawAlert(v: Record<string, unknown>): RawAlert {
  return { level: str(v.level), title: str(v.title), message: str(v.message), source: str(v.source), time: str(v.time) };
}

/** Scalar fields of a record whose shape was not agreed: shown as they are (escaped when drawn). */
function fields(v: unknown): [string, string][] {
  if (!isObject(v)) return [];
  const out: [string, string][] = [];
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out.push([k, String(x)]);
    else if (isObject(x)) for (const [k2, y] of Object.entries(x)) if (typeof y === 'string' || typeof y === 'number' || typeof y === 'boolean') out.push([`${k}.${k2}`, String(y)]);
    if (out.length >= 16) break;
  }
  return out.slice(0, 16);
}

async function firstRecord(dir: string, candidates: string[], problems: Problems): Promise<RawRecord | undefined> {
  for (const rel of candidates) {
    const path = join(dir, rel);
    if (rel.endsWith('/')) {
      const newest = (await names(path)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).pop();
      if (!newest) continue;
      const v = await readJson(join(path, newest), problems);
      if (isObject(v)) return { file: join(path, newest), fields: fields(v) };
      continue;
    }
    const v = await readJson(path, problems);
    if (isObject(v)) return { file: path, fields: fields(v) };
  }
  return undefined;
}

async function schedule(crontab: string | null | undefined, problems: Problems): Promise<RawNextRun[]> {
  const { nextRunFrom, readCrontab } = await import('../schedule/index.js');
  let text = crontab ?? undefined;
  if (crontab === undefined) {
    const tab = await readCrontab();
    if (tab.text === undefined) return [{ job: 'scheduled runs', warning: tab.warning }];
    text = tab.text;
  }
  if (text === undefined) return [];
  const jobs: [string, RegExp][] = [
    ['nightly backup', /(l2backup|backup\.sh)"?\s+nightly/],
    ['health checks', /(l2health|health-monitor\.sh)"?\s+(once|health-only|sse-only)/],
    ['alert flush', /l2alert"?\s+flush/],
    ['log cleanup', /(l2backup|backup\.sh)"?\s+cleanup-logs/],
  ];
  const out: RawNextRun[] = [];
  for (const [job, re] of jobs) {
    try {
      const n = await nextRunFrom(text, job, re);
      if (n.next || n.expression || job !== 'alert flush') out.push(n);
    } catch (err) {
      problems.push(`crontab: ${errorMessage(err)}`);
    }
  }
  return out;
}

export async function gather(input: GatherInput): Promise<RawState> {
  const problems: Problems = [];
  const p = statePaths(input.root);
  const runs = (await readLines(p.backupRuns, problems)) as RawRun[];
  const health = await readJson(p.healthState, problems);
  const open = await readJson(join(p.health, 'open-alerts.json'), problems);
  const openIncidents: RawState['openIncidents'] = Object.create(null) as RawState['openIncidents'];
  if (isObject(open)) for (const [k, v] of Object.entries(open)) if (isObject(v) && typeof v.kind === 'string' && typeof v.since === 'string') Object.defineProperty(openIncidents, k, { value: { kind: v.kind, since: v.since }, enumerable: true });
  const buffered = await readLines(input.alertBufferFile, problems);
  const spillDir = `${input.alertBufferFile}.spill`;
  const spilled: RawAlert[] = [];
  for (const n of (await names(spillDir)).filter((x) => x.endsWith('.json') && !x.startsWith('.')).slice(-50)) {
    const v = await readJson(join(spillDir, n), problems);
    if (isObject(v)) spilled.push(rawAlert(v));
  }
  const dead = await readLines(`${input.alertBufferFile}.dead`, problems);
  const delivery = await readJson(p.alertDelivery, problems);
  let disk: RawState['disk'];
  try {
    const s = await fs.statfs(input.root);
    disk = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    disk = undefined;
  }
  const targets: RawTarget[] = [];
  if (isObject(health) && isObject(health.targets)) {
    for (const [name, v] of Object.entries(health.targets)) {
      const t = rawTarget(name, v);
      if (t) targets.push(t);
    }
  }
  return {
    root: input.root,
    host: hostname(),
    runs: runs.filter((r) => typeof r.finishedAt === 'string' || typeof r.id === 'string'),
    runsTotal: runs.length,
    snapshots: await snapshots(input.root, problems),
    remoteConfigured: Boolean(input.remoteUrl),
    remoteUrl: input.remoteUrl,
    remote: await remoteRecords(p.backupRemote, problems),
    forecast: await firstRecord(p.dir, FORECAST_FILES, problems),
    disk,
    health: isObject(health) ? { lastRunAt: str(health.lastRunAt), targets } : undefined,
    openIncidents,
    alerts: {
      buffered: buffered.map(rawAlert),
      bufferedTotal: buffered.length + spilled.length,
      spilled,
      dead: dead.map((d): RawDead => ({ ...rawAlert(isObject(d.alert) ? d.alert : {}), rejectedAt: str(d.rejectedAt), status: num(d.status), error: str(d.error) })),
      deadTotal: dead.length,
      droppedTotal: isObject(delivery) ? num(delivery.droppedTotal) : undefined,
      lastSuccessAt: isObject(delivery) ? str(delivery.lastSuccessAt) : undefined,
      lastError: isObject(delivery) ? str(delivery.lastError) : undefined,
      lastErrorAt: isObject(delivery) ? str(delivery.lastErrorAt) : undefined,
    },
    schedule: await schedule(input.crontab, problems),
    drill: await firstRecord(p.dir, DRILL_FILES, problems),
    problems,
  };
}
