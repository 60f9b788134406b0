/**
 * The status page: gather (state files) -> model -> render (HTML), written atomically.
 * `refreshStatusPage` runs after every nightly, snapshot, health run and alert flush; it never
 * fails or holds up the run: any error is one warning line, and it gives up after a bound.
 */
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { secretValues } from '../config/index.js';
import type { Output } from '../output/index.js';
import { statePaths } from '../state/paths.js';
import { writeFileAtomic } from '../state/files.js';
import { errorMessage } from '../errors.js';
import { gather, type GatherInput } from './gather.js';
import { buildModel, type ReportModel } from './model.js';
import { escapeHtml, renderReport } from './render.js';

export const MAX_PAGE_BYTES = 300 * 1024;
/** How long a run waits for its page at most. */
const PAGE_BUDGET_MS = 15_000;

export function statusPagePath(root: string): string {
  return join(statePaths(root).dir, 'report', 'index.html');
}

export function gatherInput(cfg: Config): GatherInput {
  const b = cfg.BACKUP_BUCKET as { bucket: string; prefix?: string } | undefined;
  return { root: cfg.BACKUP_ROOT, alertBufferFile: cfg.ALERT_BUFFER_FILE, remoteUrl: b ? `s3://${b.bucket}${b.prefix ? '/' + b.prefix : ''}/snapshots/` : undefined };
}

/** A smaller model for a page over the size bound: fewer rows and samples, said on the page. */
function shrink(m: ReportModel): ReportModel {
  const half = <T>(xs: T[]) => xs.slice(0, Math.max(1, Math.floor(xs.length / 2)));
  return {
    ...m,
    snapshots: half(m.snapshots),
    remote: { ...m.remote, rows: half(m.remote.rows) },
    health: m.health && { ...m.health, targets: half(m.health.targets).map((t) => ({ ...t, latency: t.latency.filter((_, i) => i % 2 === 0) })) },
    alerts: { ...m.alerts, bufferedShown: half(m.alerts.bufferedShown), deadShown: half(m.alerts.deadShown) },
    problems: [...m.problems.filter((p) => !p.startsWith('page shortened')), 'page shortened to stay under 300 KB: see l2backup status, l2health status and l2alert buffer-status for everything'],
  };
}

/** Renders a model within MAX_PAGE_BYTES, shortening the lists when needed. */
export function renderBounded(model: ReportModel): string {
  let m = model;
  let html = renderReport(m);
  for (let i = 0; i < 8 && Buffer.byteLength(html) > MAX_PAGE_BYTES; i++) {
    m = shrink(m);
    html = renderReport(m);
  }
  return html;
}

/** Known secret values (keys, tokens) replaced, as the output scrubber does for log lines. */
function scrub(html: string, secrets: string[]): string {
  let out = html;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    for (const form of new Set([s, escapeHtml(s)])) if (form.length >= 6) out = out.split(form).join('****');
  }
  return out;
}

/**
 * Every string read from the volume, secrets masked BEFORE the page cuts long text to length:
 * a cut through a secret would leave a prefix that the scrub of the finished page cannot match.
 * Keeps each object's prototype (the open incidents are a null-prototype map keyed by name).
 */
function scrubStrings<T>(v: T, secrets: string[]): T {
  if (typeof v === 'string') return scrub(v, secrets) as T;
  if (Array.isArray(v)) return v.map((x: unknown) => scrubStrings(x, secrets)) as T;
  if (v && typeof v === 'object') {
    const out = Object.create(Object.getPrototypeOf(v) as object | null) as Record<string, unknown>;
    for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: scrubStrings(x, secrets), enumerable: true, writable: true, configurable: true });
    return out as T;
  }
  return v;
}

export async function buildStatusPage(cfg: Config, opts: { now?: number; crontab?: string | null } = {}): Promise<string> {
  const secrets = secretValues(cfg);
  const raw = scrubStrings(await gather({ ...gatherInput(cfg), ...(opts.crontab !== undefined ? { crontab: opts.crontab } : {}) }), secrets);
  return scrub(renderBounded(buildModel(raw, opts.now ?? Date.now())), secrets);
}

/** Writes the page to the volume after a run. Never throws; a problem is one warning line. */
export async function refreshStatusPage(cfg: Config, out: Output): Promise<void> {
  const path = statusPagePath(cfg.BACKUP_ROOT);
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'late'>((res) => {
    timer = setTimeout(() => res('late'), PAGE_BUDGET_MS);
    timer.unref();
  });
  try {
    const work = buildStatusPage(cfg).then((html) => writeFileAtomic(path, html));
    const res = await Promise.race([work, bound]);
    if (res === 'late') out.warn(`status page ${path} not written: it took longer than ${PAGE_BUDGET_MS / 1000} s`);
    work.catch(() => {});
  } catch (err) {
    out.warn(`status page ${path} not written: ${errorMessage(err)}`);
  } finally {
    clearTimeout(timer);
  }
}
