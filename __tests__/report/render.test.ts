/** The status page's pure parts: model building and rendering from plain fixture data. */
import fc from 'fast-check';
import { buildModel, strip, type RawState, type RawRun } from '../../src/report/model.js';
import { renderReport, text } from '../../src/report/render.js';
import { renderBounded, MAX_PAGE_BYTES } from '../../src/report/index.js';
import { transition, isTargetState, type TargetState } from '../../src/health/state.js';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const DAY = 86_400_000;

function run(i: number, status: string, extra: Partial<RawRun> = {}): RawRun {
  const t = NOW - (40 - i) * DAY;
  return { command: 'l2backup nightly', status, id: `202611${String(i).padStart(2, '0')}-020000`, kind: 'nightly', finishedAt: new Date(t).toISOString(), durationMs: 60_000 + i * 1000, bytes: 1e9 + i * 1e6, newBytes: 1e7 * (i % 5), ...extra };
}

function raw(over: Partial<RawState> = {}): RawState {
  return {
    root: '/backups',
    host: 'cron-1',
    runs: [],
    runsTotal: 0,
    snapshots: [],
    remoteConfigured: false,
    remote: [],
    openIncidents: {},
    alerts: { buffered: [], bufferedTotal: 0, spilled: [], dead: [], deadTotal: 0 },
    schedule: [],
    problems: [],
    ...over,
  };
}

const inner = (html: string, id: string) => html.slice(html.indexOf(`<section id="${id}"`), html.indexOf('</section>', html.indexOf(`<section id="${id}"`)));

test('the last 30 runs become 30 bars per chart, failed and partial ones marked by a symbol and a word', () => {
  const runs = Array.from({ length: 36 }, (_, i) => run(i + 1, i === 33 ? 'failed' : i === 30 ? 'partial' : 'ok', i === 33 ? { bytes: undefined, newBytes: undefined, error: 'EIO' } : {}));
  const html = renderReport(buildModel(raw({ runs, runsTotal: 36 }), NOW));
  for (const chart of ['durationMs', 'bytes', 'newBytes']) {
    const svg = html.slice(html.indexOf(`data-chart="${chart}"`), html.indexOf('</svg>', html.indexOf(`data-chart="${chart}"`)));
    expect(svg.match(/<g class="run /g)).toHaveLength(30);
  }
  expect(html).toMatch(/data-status="failed"[^>]*aria-label="[^"]*FAILED[^"]*EIO/);
  expect(html).toContain('The last 30 of 36 recorded runs');
  // the oldest six are left out: run 1..6
  expect(html).not.toContain('20261101-020000');
  expect(html).toContain('20261107-020000');
});

test('strings from state render as text: tags escaped, newlines visible, URL credentials masked', () => {
  const target = { name: '<script>alert(1)</script>', kind: 'http', status: 'down', since: new Date(NOW - 3600_000).toISOString(), lastError: 'HTTP 503 from https://ops:s3cretpass@host/x?token=abcdef', history: [[NOW / 1000 - 60, 2]] as [number, number][] };
  const html = renderReport(
    buildModel(
      raw({
        runs: [run(1, 'failed', { id: 'x"><b>y', error: 'file a\nb.log: "<i>"' })],
        runsTotal: 1,
        health: { targets: [target, { ...target, name: 'line\nbreak' }] },
        openIncidents: { '<script>alert(1)</script>': { kind: 'down', since: target.since } },
        alerts: { buffered: [{ level: 'error', title: '<img src=x onerror=alert(1)>', message: 'm', source: 's', time: new Date(NOW).toISOString() }], bufferedTotal: 1, spilled: [], dead: [], deadTotal: 0 },
      }),
      NOW,
    ),
  );
  expect(html).not.toMatch(/<script/i);
  expect(html).not.toMatch(/<img/i);
  expect(html).not.toContain('<i>');
  expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(html).toContain('line\\nbreak');
  expect(html).toContain('file a\\nb.log');
  expect(html).not.toContain('s3cretpass');
  expect(html).not.toContain('abcdef');
  expect(html).not.toMatch(/x"><b>y/);
});

test('text() is safe for any string (property)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      const t = text(s);
      expect(t).not.toMatch(/[<>"']/);
      // eslint-disable-next-line no-control-regex -- the point
      expect(t).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    }),
  );
});

test('a flapping target: its 24-hour strip has down buckets between up ones; uptime and incident shown', () => {
  let s: TargetState | undefined;
  let open;
  for (let k = 0; k < 288; k++) {
    const t = NOW - DAY + k * 300_000;
    const down = k % 24 < 4;
    const r = transition('flappy', s, open, { name: 'flappy', kind: 'http', status: down ? 'down' : 'up', latencyMs: down ? 5000 : 50 + k, reason: down ? 'HTTP 500' : 'ok' }, t, { failure: 2, success: 1, reminderMinutes: 60 });
    s = r.state;
    open = r.open;
  }
  expect(isTargetState(s)).toBe(true);
  expect(s!.latency!.length).toBe(288);
  const levels = strip(s!.history, 86_400, 48, NOW);
  const changes = levels.filter((l, i) => i > 0 && l !== levels[i - 1]).length;
  expect(changes).toBeGreaterThanOrEqual(20);
  const html = renderReport(buildModel(raw({ health: { targets: [{ name: 'flappy', ...s!, history: s!.history, latency: s!.latency }] } }), NOW));
  expect(html.match(/data-level="down"/g)!.length).toBeGreaterThanOrEqual(10);
  expect(html).toMatch(/<polyline points="[^"]+"/);
  expect(html).toMatch(/\d+\.\d% up <span class="nowrap">· \d+ down/);
});

test('latency history is bounded and old state without it still validates', () => {
  let s: TargetState | undefined;
  for (let k = 0; k < 2500; k++) s = transition('a', s, undefined, { name: 'a', kind: 'http', status: 'up', latencyMs: 10, reason: 'ok' }, NOW + k * 1000, { failure: 2, success: 1, reminderMinutes: 0 }).state;
  expect(s!.latency!.length).toBe(2100);
  const { latency: _drop, ...old } = s!;
  expect(isTargetState(old)).toBe(true);
  expect(isTargetState({ ...old, latency: [[1, 'x']] })).toBe(false);
  // A check without a latency (a backup-age check) adds nothing.
  const b = transition('backup', undefined, undefined, { name: 'backup', kind: 'backup', status: 'up', reason: 'ok' }, NOW, { failure: 2, success: 1, reminderMinutes: 0 }).state;
  expect(b.latency).toBeUndefined();
});

test('empty volume: every section says so, forecast "not available", no drill section', () => {
  const html = renderReport(buildModel(raw(), NOW));
  expect(inner(html, 'runs')).toContain('No backup run recorded yet');
  expect(inner(html, 'health')).toContain('No health state recorded yet');
  expect(inner(html, 'snapshots')).toContain('Storage forecast: not available');
  expect(html).not.toContain('id="drill"');
  expect(inner(html, 'alerts')).toContain('No buffered alerts');
});

test('forecast and drill records are shown as escaped fields when present', () => {
  const html = renderReport(buildModel(raw({ forecast: { file: '/b/.l2/backup/forecast.json', fields: [['full_in_days', '41']] }, drill: { file: '/b/.l2/backup/last-drill.json', fields: [['status', '<ok>']] } }), NOW));
  expect(inner(html, 'snapshots')).toContain('full_in_days');
  expect(inner(html, 'drill')).toContain('&lt;ok&gt;');
});

test('next runs: time and expression, or the reason there is none', () => {
  const html = renderReport(buildModel(raw({ schedule: [{ job: 'nightly backup', next: '2026-11-26T02:00:00.000Z', expression: '0 2 * * *' }, { job: 'health checks', warning: 'the crontab has no line for health checks' }] }), NOW));
  const s = inner(html, 'schedule');
  expect(s).toContain('2026-11-26 02:00 UTC');
  expect(s).toContain('in 14 h 0 min');
  expect(s).toContain('the crontab has no line for health checks');
});

test('a huge state still gives a page under 300 KB, saying it was shortened', () => {
  const history: [number, number][] = Array.from({ length: 2016 }, (_, k) => [NOW / 1000 - k * 300, k % 2 ? 2 : 0]);
  const latency: [number, number][] = history.map(([t], k) => [t, 100 + k]);
  const targets = Array.from({ length: 200 }, (_, i) => ({ name: `target-${i}-${'x'.repeat(100)}`, kind: 'http', status: 'down', history, latency, lastError: 'e'.repeat(1000) }));
  const alerts = Array.from({ length: 5000 }, (_, i) => ({ level: 'error', title: `t${i}`, message: 'm'.repeat(2000), source: 's', time: new Date(NOW).toISOString() }));
  const model = buildModel(raw({ health: { targets }, alerts: { buffered: alerts, bufferedTotal: 5000, spilled: [], dead: alerts, deadTotal: 5000 }, runs: Array.from({ length: 5000 }, (_, i) => run(i % 40, 'failed', { error: 'y'.repeat(5000) })), runsTotal: 5000 }), NOW);
  const html = renderBounded(model);
  expect(Buffer.byteLength(html)).toBeLessThan(MAX_PAGE_BYTES);
  expect(html).toContain('page shortened');
});
