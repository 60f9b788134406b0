/**
 * Draws the status page from a ReportModel: one self-contained HTML document, inline CSS and
 * SVG, no scripts. Pure: the same model gives the same page.
 * - Every string that came from state passes through `text()`: credentials in URLs masked,
 *   control characters made visible (a name with a newline stays on one line), HTML escaped.
 * - Nothing is said by colour alone: every status has a word and a symbol, chart marks have
 *   shapes (hatching, crosses, taller segments), and the colours follow prefers-color-scheme.
 * - Narrow screens: charts scale with the page, tables drop their minor columns and wrap.
 */
import { escapeControl } from '../errors.js';
import { formatBytes, formatDuration } from '../output/index.js';
import { maskUrlCredentials } from '../output/mask.js';
import type { Level, RawRecord, ReportModel, RunBar, RunStatus, TargetView } from './model.js';

const MAX_TEXT = 400;

/** Escapes for HTML text and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A string from state, made safe to show: masked, control characters visible, bounded, escaped. */
export function text(s: string | undefined | null, max = MAX_TEXT): string {
  if (s === undefined || s === null) return '';
  let t = escapeControl(maskUrlCredentials(String(s)));
  if (t.length > max) t = `${t.slice(0, max)}…`;
  return escapeHtml(t);
}

const RUN_WORD: Record<RunStatus, [string, string]> = {
  ok: ['✓', 'OK'],
  partial: ['!', 'PARTIAL'],
  pending: ['↑', 'REMOTE PENDING'],
  failed: ['✕', 'FAILED'],
  unknown: ['?', 'UNKNOWN'],
};

const TARGET_WORD: Record<TargetView['status'], [string, string]> = {
  up: ['✓', 'UP'],
  degraded: ['!', 'DEGRADED'],
  down: ['✕', 'DOWN'],
  unknown: ['?', 'UNKNOWN'],
};

function badge(cls: string, [symbol, word]: [string, string]): string {
  return `<span class="badge s-${cls}"><span aria-hidden="true">${symbol}</span> ${word}</span>`;
}

function when(iso: string | undefined, now: number): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return text(iso);
  const abs = new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  const d = now - t;
  const rel = d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
  return `<time datetime="${escapeHtml(new Date(t).toISOString())}">${abs}</time> <span class="muted">(${rel})</span>`;
}

const bytes = (n: number | undefined) => (n === undefined ? '—' : formatBytes(n));
const pct = (v: number | null) => (v === null ? 'no data' : `${(v * 100).toFixed(v === 1 ? 0 : 1)}%`);

// ---------- backup runs ----------

interface Metric {
  key: 'durationMs' | 'bytes' | 'newBytes';
  title: string;
  fmt: (n: number) => string;
  height: number;
}

const METRICS: Metric[] = [
  { key: 'durationMs', title: 'Duration', fmt: formatDuration, height: 80 },
  { key: 'bytes', title: 'Snapshot size', fmt: formatBytes, height: 60 },
  { key: 'newBytes', title: 'New bytes (not linked from the previous snapshot)', fmt: formatBytes, height: 60 },
];

const SLOT = 20;
const BAR = 14;
const MARK: Partial<Record<RunStatus, string>> = { failed: '✕', partial: '!', pending: '↑', unknown: '?' };

function runLabel(r: RunBar, now: number): string {
  const [, word] = RUN_WORD[r.status];
  const parts = [`${r.id} ${r.kind} ${word}`];
  if (r.finishedAt) parts.push(`finished ${r.finishedAt.slice(0, 16).replace('T', ' ')} UTC (${formatDuration(Math.max(0, now - Date.parse(r.finishedAt)))} ago)`);
  if (r.durationMs !== undefined) parts.push(`took ${formatDuration(r.durationMs)}`);
  if (r.bytes !== undefined) parts.push(`${formatBytes(r.bytes)}, ${formatBytes(r.newBytes ?? 0)} new`);
  if (r.error) parts.push(r.error);
  return parts.join('; ');
}

function runChart(runs: RunBar[], m: Metric, now: number): string {
  const values = runs.map((r) => r[m.key]);
  const max = Math.max(1, ...values.filter((v): v is number => v !== undefined));
  const top = 16; // room for the status marks above the bars
  const h = m.height;
  const width = Math.max(runs.length, 30) * SLOT;
  const bars = runs
    .map((r, i) => {
      const v = r[m.key];
      const x = i * SLOT + (SLOT - BAR) / 2;
      const bh = v === undefined || v === 0 ? 2 : Math.max(2, Math.round((v / max) * (h - 2)));
      const y = top + h - bh;
      const mark = MARK[r.status];
      const label = text(runLabel(r, now));
      return (
        `<g class="run s-${r.status}" data-status="${r.status}" data-id="${text(r.id)}" role="img" aria-label="${label}"><title>${label}</title>` +
        (r.status === 'failed' ? `<rect class="fail-bg" x="${i * SLOT + 1}" y="${top}" width="${SLOT - 2}" height="${h}"/>` : '') +
        `<rect class="bar" x="${x}" y="${y}" width="${BAR}" height="${bh}"/>` +
        (r.status === 'failed' || r.status === 'partial' ? `<rect class="hatch" x="${x}" y="${y}" width="${BAR}" height="${bh}"/>` : '') +
        (mark ? `<text class="mark" x="${x + BAR / 2}" y="${Math.min(y - 3, top + h - 5)}" text-anchor="middle">${mark}</text>` : '') +
        `</g>`
      );
    })
    .join('');
  return (
    `<figure class="chart"><figcaption><b>${m.title}</b> <span class="muted">highest ${m.fmt(max === 1 && values.every((v) => !v) ? 0 : max)}</span></figcaption>` +
    `<svg data-chart="${m.key}" viewBox="0 0 ${width} ${top + h + 2}" preserveAspectRatio="xMinYMin meet" role="group" aria-label="${m.title} of the last ${runs.length} runs">` +
    `<line class="axis" x1="0" y1="${top + h + 0.5}" x2="${width}" y2="${top + h + 0.5}"/>${bars}</svg></figure>`
  );
}

function runsSection(m: ReportModel): string {
  if (m.runs.length === 0) return section('runs', 'Backup runs', '<p>No backup run recorded yet (<code>l2backup nightly</code> writes the first).</p>');
  const counts = (['ok', 'pending', 'partial', 'failed'] as RunStatus[]).map((s) => [s, m.runs.filter((r) => r.status === s).length] as const).filter(([, n]) => n > 0);
  const summary = `<p>The last ${m.runs.length} of ${m.runsTotal} recorded runs, oldest on the left: ${counts.map(([s, n]) => `${n} ${badge(s, RUN_WORD[s])}`).join(' ')}</p>`;
  const legend =
    `<p class="legend"><span class="key s-ok"><svg viewBox="0 0 10 10"><rect class="bar" width="10" height="10"/></svg> ok</span>` +
    `<span class="key s-pending"><svg viewBox="0 0 10 10"><rect class="bar" width="10" height="10"/></svg> ↑ local ok, remote pending</span>` +
    `<span class="key s-partial"><svg viewBox="0 0 10 10"><rect class="bar" width="10" height="10"/><rect class="hatch" width="10" height="10"/></svg> ! partial</span>` +
    `<span class="key s-failed"><svg viewBox="0 0 10 10"><rect class="bar" width="10" height="10"/><rect class="hatch" width="10" height="10"/></svg> ✕ failed</span></p>`;
  const first = m.runs[0]!;
  const last = m.runs[m.runs.length - 1]!;
  const day = (r: RunBar) => (r.finishedAt ? text(r.finishedAt.slice(0, 10)) : text(r.id));
  const axis = `<p class="axis-labels"><span>← ${day(first)}</span><span>${day(last)} →</span></p>`;
  const recent = [...m.runs].reverse().slice(0, 8);
  const list =
    `<ul class="runlist">` +
    recent
      .map(
        (r) =>
          `<li class="s-${r.status}"><div class="row1">${badge(r.status, RUN_WORD[r.status])} <span class="id">${text(r.id)}</span> <span class="muted">${text(r.kind)}</span></div>` +
          `<div class="row2 small"><span>${when(r.finishedAt, m.now)}</span><span>took ${r.durationMs === undefined ? '—' : formatDuration(r.durationMs)}</span><span>size ${bytes(r.bytes)}</span><span>new ${bytes(r.newBytes)}</span></div>` +
          `${r.error ? `<div class="err">${text(r.error)}</div>` : ''}</li>`,
      )
      .join('') +
    `</ul>`;
  const charts = METRICS.map((metric) => runChart(m.runs, metric, m.now)).join('');
  return section('runs', 'Backup runs', summary + legend + charts + axis + `<h3>Latest runs, newest first</h3>` + list);
}

// ---------- snapshots ----------

function snapshotsSection(m: ReportModel): string {
  const local = m.snapshots.length
    ? `<div class="tw"><table><thead><tr><th>Snapshot</th><th class="num">Size</th><th class="wide num">New</th><th class="wide num">Files</th><th>Remote</th></tr></thead><tbody>` +
      m.snapshots
        .map((s) => {
          const remote = m.remote.rows.find((r) => r.id === s.id)?.state ?? (s.preRestore ? 'not uploaded' : '—');
          const kind = `${text(s.kind)}${s.partial ? ' <b>! partial</b>' : ''}`;
          return `<tr><td><span class="id">${text(s.id)}</span> <span class="muted">${kind}</span></td><td class="num">${bytes(s.bytes)}</td><td class="wide num">${bytes(s.newBytes)}</td><td class="wide num">${s.files ?? '—'}</td><td>${text(remote)}</td></tr>`;
        })
        .join('') +
      `</tbody></table></div>${m.snapshotsTotal > m.snapshots.length ? `<p class="muted">and ${m.snapshotsTotal - m.snapshots.length} older</p>` : ''}`
    : '<p>No local snapshot.</p>';
  const remoteRows = m.remote.rows;
  const states = ['uploaded', 'pending', 'skipped'].map((s) => [s, remoteRows.filter((r) => r.state === s).length] as const);
  const remote = m.remote.total
    ? `<p>${m.remote.url ? `<span class="id">${text(m.remote.url)}</span>: ` : ''}${states.map(([s, n]) => `${n} ${s}`).join(', ')}.</p>` +
      `<div class="tw"><table><thead><tr><th>Snapshot</th><th>Remote state</th><th class="num">Size</th><th class="wide">Uploaded</th></tr></thead><tbody>` +
      remoteRows
        .map(
          (r) =>
            `<tr><td class="id">${text(r.id)}</td><td>${r.state === 'uploaded' ? '✓ uploaded' : r.state === 'pending' ? '↑ pending' : `✕ ${text(r.state)}`}${r.lastError && r.state !== 'uploaded' ? `<div class="err">${text(r.lastError)}</div>` : ''}</td><td class="num">${bytes(r.bytes)}</td><td class="wide">${when(r.uploadedAt, m.now)}</td></tr>`,
        )
        .join('') +
      `</tbody></table></div>`
    : `<p>${m.remote.configured ? `${m.remote.url ? `<span class="id">${text(m.remote.url)}</span>: ` : ''}nothing recorded on the remote yet.` : 'No remote configured (BACKUP_BUCKET not set), or none recorded on this volume.'}</p>`;
  const disk = m.disk ? `<p>Volume: ${formatBytes(m.disk.freeBytes)} free of ${formatBytes(m.disk.totalBytes)}${meter(1 - m.disk.freeBytes / Math.max(1, m.disk.totalBytes))}</p>` : '';
  const forecast = m.forecast ? record(m.forecast) : '<p class="muted">Storage forecast: not available (no forecast recorded on this volume).</p>';
  return section('snapshots', 'Snapshots', disk + `<h3>Local</h3>` + local + `<h3>Remote</h3>` + remote + `<h3>Storage forecast</h3>` + forecast);
}

function meter(used: number): string {
  const u = Math.min(1, Math.max(0, used));
  return ` <svg class="meter" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="${Math.round(u * 100)}% used"><rect class="meter-bg" width="100" height="8"/><rect class="meter-fg" width="${(u * 100).toFixed(1)}" height="8"/></svg> <span class="muted">${Math.round(u * 100)}% used</span>`;
}

function record(r: RawRecord): string {
  if (r.fields.length === 0) return `<p class="muted">${text(r.file)}: recorded, with no fields to show.</p>`;
  return `<dl class="fields">${r.fields.map(([k, v]) => `<dt>${text(k, 80)}</dt><dd>${text(v, 200)}</dd>`).join('')}</dl><p class="muted small">from ${text(r.file)}</p>`;
}

// ---------- health ----------

/** Segments of equal level, so a steady week is one rect, not 84. */
function runs<T>(xs: T[]): { v: T; from: number; len: number }[] {
  const out: { v: T; from: number; len: number }[] = [];
  xs.forEach((v, i) => {
    const last = out[out.length - 1];
    if (last && last.v === v) last.len++;
    else out.push({ v, from: i, len: 1 });
  });
  return out;
}

const LEVEL_Y: Record<Level, [number, number]> = { down: [0, 12], degraded: [3, 9], up: [3, 9], none: [10.5, 1.5] };

function uptimeStrip(levels: Level[], label: string, window: string): string {
  const segs = runs(levels)
    .map(({ v, from, len }) => {
      const [y, h] = LEVEL_Y[v];
      const hatch = v === 'degraded' || v === 'down' ? `<rect class="hatch" x="${from}" y="${y}" width="${len}" height="${h}"/>` : '';
      return `<rect class="seg l-${v}" data-level="${v}" x="${from}" y="${y}" width="${len}" height="${h}"/>${hatch}`;
    })
    .join('');
  return `<svg class="strip" data-window="${window}" viewBox="0 0 ${levels.length} 12" preserveAspectRatio="none" role="img" aria-label="${escapeHtml(label)}"><title>${escapeHtml(label)}</title>${segs}</svg>`;
}

function sparkline(t: TargetView): string {
  const pts = t.latency;
  if (pts.length < 2) return `<span class="lbl">latency</span><span class="muted small">${t.lastLatencyMs !== undefined ? `${t.lastLatencyMs} ms at the last check` : 'not measured'}</span><span></span>`;
  const sorted = pts.map((p) => p.ms).sort((a, b) => a - b);
  const max = Math.max(1, sorted[sorted.length - 1]!);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const t0 = pts[0]!.t;
  const span = Math.max(1, pts[pts.length - 1]!.t - t0);
  const line = pts.map((p) => `${(((p.t - t0) / span) * 100).toFixed(1)},${(23 - (p.ms / max) * 22).toFixed(1)}`).join(' ');
  return (
    `<span class="lbl">latency</span><svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label="latency over the last 24 hours: median ${median} ms, highest ${max} ms"><title>latency over the last 24 hours: last ${pts[pts.length - 1]!.ms} ms, median ${median} ms, highest ${max} ms</title><polyline points="${line}" vector-effect="non-scaling-stroke"/></svg>` +
    `<span class="val">last <b>${pts[pts.length - 1]!.ms} ms</b><br><span class="muted">median ${median} <span class="nowrap">max ${max}</span></span></span>`
  );
}

function targetCard(t: TargetView, now: number): string {
  const label24 = `last 24 hours: ${pct(t.uptime24h)} up`;
  const label7 = `last 7 days: ${pct(t.uptime7d)} up`;
  const incident = t.incident
    ? `<p class="incident">Open incident: <b>${text(t.incident.kind.toUpperCase())}</b> since ${when(t.incident.since, now)}${t.lastError ? `: ${text(t.lastError)}` : ''}</p>`
    : t.lastError
      ? `<p class="incident">${text(t.lastError)}</p>`
      : '';
  return (
    `<article class="target s-${t.status}" data-target="${text(t.name)}">` +
    `<header><h3>${text(t.name)}</h3> <span class="muted">${text(t.kind)}</span> ${badge(t.status, TARGET_WORD[t.status])} <span class="muted small">since ${when(t.since, now)}</span></header>` +
    incident +
    `<div class="strips"><span class="lbl">24 h</span>${uptimeStrip(t.strip24h, label24, '24h')}<span class="val">${pct(t.uptime24h)} up${t.downChecks24h ? ` <span class="nowrap">· ${t.downChecks24h} down</span>` : ''}</span>` +
    `<span class="lbl">7 d</span>${uptimeStrip(t.strip7d, label7, '7d')}<span class="val">${pct(t.uptime7d)} up</span>` +
    sparkline(t) +
    `</div></article>`
  );
}

function healthSection(m: ReportModel): string {
  if (!m.health) return section('health', 'Health targets', '<p>No health state recorded yet (<code>l2health once</code> writes it).</p>');
  const ts = m.health.targets;
  const n = (s: TargetView['status']) => ts.filter((t) => t.status === s).length;
  const summary = `<p>${(['down', 'degraded', 'up', 'unknown'] as const).filter((s) => n(s)).map((s) => `${n(s)} ${badge(s, TARGET_WORD[s])}`).join(' ')} <span class="muted">· last check run ${when(m.health.lastRunAt, m.now)}</span></p>`;
  const legend = `<p class="legend small">Strips, oldest on the left: <span class="key"><svg viewBox="0 0 10 12"><rect class="seg l-up" y="3" width="10" height="6"/></svg> up</span><span class="key"><svg viewBox="0 0 10 12"><rect class="seg l-degraded" y="3" width="10" height="6"/><rect class="hatch" y="3" width="10" height="6"/></svg> degraded</span><span class="key"><svg viewBox="0 0 10 12"><rect class="seg l-down" width="10" height="12"/><rect class="hatch" width="10" height="12"/></svg> down (tall)</span><span class="key"><svg viewBox="0 0 10 12"><rect class="seg l-none" y="10.5" width="10" height="1.5"/></svg> no check</span></p>`;
  const more = m.health.targetsTotal > ts.length ? `<p class="muted">and ${m.health.targetsTotal - ts.length} more targets (see <code>l2health status</code>)</p>` : '';
  return section('health', 'Health targets', summary + legend + ts.map((t) => targetCard(t, m.now)).join('') + more);
}

// ---------- alerts, schedule, drill ----------

function alertsSection(m: ReportModel): string {
  const a = m.alerts;
  const list = (items: { level?: string; title?: string; message?: string; source?: string; time?: string; extra?: string }[]) =>
    `<ul class="alerts">${items.map((x) => `<li><span class="lvl">${text((x.level ?? '?').toUpperCase())}</span> <b>${text(x.title)}</b> <span class="muted small">${text(x.source)} · ${when(x.time, m.now)}</span><div class="small">${text(x.message, 240)}</div>${x.extra ? `<div class="err small">${x.extra}</div>` : ''}</li>`).join('')}</ul>`;
  const head =
    `<p>${a.bufferedTotal === 0 ? '✓ No buffered alerts.' : `<b>! ${a.bufferedTotal} buffered</b> (not yet delivered${a.spilled.length ? `, ${a.spilled.length} spilled` : ''})`} · ${a.deadTotal === 0 ? 'no dead letters' : `<b>✕ ${a.deadTotal} dead-lettered</b> (rejected by the webhook for good)`}` +
    `${a.droppedTotal ? ` · ${a.droppedTotal} dropped over the cap` : ''}</p>` +
    `<p class="small muted">Last delivery to the webhook: ${a.lastSuccessAt ? when(a.lastSuccessAt, m.now) : 'never'}${a.lastError ? ` · last error: ${text(a.lastError)} ${when(a.lastErrorAt, m.now)}` : ''}</p>`;
  const buffered = a.bufferedShown.length ? `<h3>Buffered, newest first</h3>${list(a.bufferedShown)}` : '';
  const dead = a.deadShown.length ? `<h3>Dead letters, newest first</h3>${list(a.deadShown.map((d) => ({ ...d, extra: `rejected ${d.status ? `with HTTP ${d.status}` : ''} ${d.rejectedAt ? when(d.rejectedAt, m.now) : ''}${d.error ? `: ${text(d.error)}` : ''}` })))}` : '';
  return section('alerts', 'Alerts', head + buffered + dead);
}

function scheduleSection(m: ReportModel): string {
  if (m.schedule.length === 0) return section('schedule', 'Next runs', '<p class="muted">Not available.</p>');
  return section(
    'schedule',
    'Next runs',
    `<table><tbody>${m.schedule.map((n) => `<tr><td>${text(n.job)}</td><td>${n.next ? when(n.next, m.now) : `<span class="muted">${text(n.warning ?? 'unknown')}</span>`}</td><td class="wide"><code>${text(n.expression ?? '')}</code></td></tr>`).join('')}</tbody></table><p class="small muted">From the crontab of the host that wrote this page.</p>`,
  );
}

function drillSection(m: ReportModel): string {
  return m.drill ? section('drill', 'Last restore drill', record(m.drill)) : '';
}

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${title}</h2>${body}</section>`;
}

function overview(m: ReportModel): string {
  const lr = m.lastRun;
  const items: string[] = [];
  items.push(`<div class="tile"><div class="k">Last backup run</div>${lr ? `${badge(lr.status, RUN_WORD[lr.status])}<div class="small">${text(lr.id)}<br>${when(lr.finishedAt, m.now)}</div>` : '<div>never</div>'}</div>`);
  items.push(`<div class="tile"><div class="k">Last successful backup</div>${m.lastSuccess ? `<div>${text(m.lastSuccess.id)}</div><div class="small">${when(m.lastSuccess.finishedAt, m.now)}</div>` : '<div><b>✕ none recorded</b></div>'}</div>`);
  if (m.health) {
    const down = m.health.targets.filter((t) => t.status === 'down' || t.status === 'degraded').length;
    items.push(`<div class="tile"><div class="k">Health targets</div>${down ? badge('down', ['✕', `${down} NOT UP`]) : badge('up', ['✓', 'ALL UP'])}<div class="small">${m.health.targetsTotal} checked</div></div>`);
  }
  items.push(`<div class="tile"><div class="k">Undelivered alerts</div>${m.alerts.bufferedTotal || m.alerts.deadTotal ? badge('partial', ['!', `${m.alerts.bufferedTotal} buffered, ${m.alerts.deadTotal} dead`]) : badge('ok', ['✓', 'NONE'])}</div>`);
  return `<div class="tiles">${items.join('')}</div>`;
}

const CSS = `
:root{--bg:#fff;--fg:#1b1f24;--muted:#5b6470;--card:#f5f7f9;--line:#d3d8de;--ok:#1a7f37;--warn:#9a6700;--bad:#c4262e;--pend:#2f6fb3;--none:#b8bfc7;--hatch:rgba(255,255,255,.55)}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--fg:#e6e9ed;--muted:#9aa4af;--card:#181c22;--line:#2c333b;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--pend:#58a6ff;--none:#4a525c;--hatch:rgba(0,0,0,.5)}}
*{box-sizing:border-box}html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;overflow-wrap:break-word}
.tw{overflow-x:auto}td .id{white-space:nowrap}h3,.incident,.err,li,dd{overflow-wrap:anywhere}
main{max-width:980px;margin:0 auto;padding:12px}
h1{font-size:1.35rem;margin:.2em 0}h2{font-size:1.15rem;margin:0 0 .5em;border-bottom:2px solid var(--line);padding-bottom:.2em}h3{font-size:1rem;margin:1em 0 .4em}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;margin:12px 0}
p{margin:.4em 0}.muted{color:var(--muted)}.small{font-size:.85rem}code,.id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
.badge{display:inline-block;font-weight:700;font-size:.8rem;padding:1px 7px;border-radius:10px;border:2px solid currentColor;white-space:nowrap}
.badge.s-ok,.badge.s-up{color:var(--ok)}.badge.s-partial,.badge.s-degraded{color:var(--warn)}.badge.s-failed,.badge.s-down{color:var(--bad)}.badge.s-pending{color:var(--pend)}.badge.s-unknown{color:var(--muted)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:8px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 10px}.tile .k{font-size:.8rem;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
.chart{margin:.6em 0 0}.chart figcaption{font-size:.9rem}.chart svg{display:block;width:100%;height:auto}
.run .bar{fill:var(--ok)}.run.s-pending .bar{fill:var(--pend)}.run.s-partial .bar{fill:var(--warn)}.run.s-failed .bar{fill:var(--bad)}.run.s-unknown .bar{fill:var(--none)}
.hatch{fill:url(#hatch)}.fail-bg{fill:var(--bad);fill-opacity:.14;stroke:var(--bad);stroke-opacity:.5;stroke-dasharray:3 2}.mark{font:bold 14px system-ui,sans-serif;fill:var(--fg)}.axis{stroke:var(--muted);stroke-width:1}
.axis-labels{display:flex;justify-content:space-between;font-size:.8rem;color:var(--muted);font-family:ui-monospace,monospace}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem}.key{white-space:nowrap}.key svg{width:14px;height:14px;vertical-align:-2px;margin-right:3px}
.key.s-ok .bar{fill:var(--ok)}.key.s-pending .bar{fill:var(--pend)}.key.s-partial .bar{fill:var(--warn)}.key.s-failed .bar{fill:var(--bad)}
table{width:100%;border-collapse:collapse;font-size:.9rem}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top}th{font-size:.8rem;color:var(--muted)}td.num,th.num{text-align:right;white-space:nowrap}
.err{color:var(--bad);font-size:.85rem}
ul.runlist{list-style:none;margin:0;padding:0}ul.runlist li{border-top:1px solid var(--line);padding:6px 0}.row2{display:flex;flex-wrap:wrap;gap:2px 14px;color:var(--muted)}.row2 span,.nowrap{white-space:nowrap}
.target{border-top:1px solid var(--line);padding:8px 0}.target header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 8px}.target h3{margin:0;font-size:1rem}
.incident{border-left:4px solid var(--bad);padding-left:8px;font-size:.9rem}
.strips{display:grid;grid-template-columns:3.8em 1fr 9.5em;gap:5px 8px;align-items:center;margin:.4em 0}.strips .lbl{font-size:.8rem;color:var(--muted)}.strips .val{font-size:.85rem;line-height:1.25}
.strip{width:100%;height:20px;display:block}
.seg.l-up{fill:var(--ok)}.seg.l-degraded{fill:var(--warn)}.seg.l-down{fill:var(--bad)}.seg.l-none{fill:var(--none)}
.spark{width:100%;height:30px;display:block;border-bottom:1px solid var(--line);border-left:1px solid var(--line)}.spark polyline{fill:none;stroke:var(--fg);stroke-width:1.5}
.meter{width:120px;height:10px;vertical-align:middle}.meter-bg{fill:var(--none)}.meter-fg{fill:var(--fg)}
ul.alerts{list-style:none;padding:0;margin:0}ul.alerts li{border-top:1px solid var(--line);padding:5px 0}.lvl{font-weight:700;font-size:.75rem;border:1px solid currentColor;border-radius:4px;padding:0 4px}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:.4em 0}dt{color:var(--muted)}dd{margin:0}
.problems{border-left:4px solid var(--warn)}
footer{font-size:.8rem;color:var(--muted);text-align:center;padding:8px}
@media (max-width:520px){body{font-size:14px}main{padding:6px}section{padding:8px;margin:8px 0}.wide{display:none}.tiles{grid-template-columns:1fr 1fr}.strips{grid-template-columns:3.4em 1fr 6.6em}}
@media print{section{break-inside:avoid}}
`;

/** Shared SVG definitions (the hatch pattern that marks partial, failed, degraded and down). */
const DEFS = `<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="4" height="4" patternTransform="rotate(45)"><rect width="1.6" height="4" fill="var(--hatch)"/></pattern></defs></svg>`;

export function renderReport(m: ReportModel): string {
  const problems = m.problems.length ? section('problems', 'Could not read', `<ul>${m.problems.map((p) => `<li>${text(p)}</li>`).join('')}</ul>`).replace('<section ', '<section class="problems" ') : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="light dark">
<title>l2ops status${m.host ? ` · ${text(m.host, 80)}` : ''}</title><style>${CSS}</style></head>
<body>${DEFS}<main>
<header><h1>l2ops status</h1><p class="muted small">Volume <span class="id">${text(m.root)}</span>${m.host ? ` on ${text(m.host, 80)}` : ''} · written <time datetime="${m.generatedAt}">${m.generatedAt.slice(0, 19).replace('T', ' ')} UTC</time>. The page does not refresh itself: reload after the next run.</p></header>
${overview(m)}
${problems}${runsSection(m)}${healthSection(m)}${alertsSection(m)}${snapshotsSection(m)}${drillSection(m)}${scheduleSection(m)}
<footer>l2ops · <code>l2backup report -o FILE</code> writes this page on demand</footer>
</main></body></html>
`;
}
