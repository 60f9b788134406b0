/**
 * The text exposition writer: label values and HELP text with quotes, backslashes, newlines and
 * any Unicode round-trip, checked two ways: a strict parser of the format's grammar (written
 * from the spec, independent of the writer) gives back the exact values, and promtool (the
 * Prometheus project's own parser and linter) accepts the very same file.
 */
import fc from 'fast-check';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { scratch } from '../helpers/cleanup.js';
import { renderFamilies, escapeLabelValue, type Family } from '../../src/metrics/exposition.js';

interface Parsed {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/** Parses the exposition format's grammar strictly; throws on anything it does not allow. */
function parse(text: string): Parsed {
  const out: Parsed = { help: new Map(), type: new Map(), samples: [] };
  if (!text.endsWith('\n')) throw new Error('no final newline');
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/s.exec(line);
    if (m) {
      out.help.set(m[1]!, unescape(m[2]!, false));
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      out.type.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/s.exec(line);
    if (!m) throw new Error(`bad line ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    while (rest) {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!l) throw new Error(`bad labels ${JSON.stringify(m[2])}`);
      labels[l[1]!] = unescape(l[2]!, true);
      rest = rest.slice(l[0].length);
    }
    out.samples.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : m[3] === 'NaN' ? NaN : Number(m[3]) });
  }
  return out;
}

function unescape(s: string, label: boolean): string {
  return s.replace(/\\(.)/g, (all, c: string) => {
    if (c === 'n') return '\n';
    if (c === '\\') return '\\';
    if (c === '"' && label) return '"';
    throw new Error(`bad escape ${all}`);
  });
}

// Strings that stress the escaping: the three special characters, lookalikes, and any Unicode.
const nasty = fc.oneof(
  fc.string({ unit: fc.constantFrom('"', '\\', '\n', 'n', '\\n', '{', '}', ',', '=', ' ', 'a', '#', '\r', '\t', 'ü', '🙂') }),
  fc.string({ unit: 'grapheme' }),
);

test('label values and HELP text round-trip exactly through a strict parser', () => {
  fc.assert(
    fc.property(fc.uniqueArray(nasty, { minLength: 1, maxLength: 8 }), nasty, fc.double({ noNaN: true }), (targets, help, value) => {
      const fam: Family = { name: 'l2health_probe_success', type: 'gauge', help, samples: targets.map((t, i) => ({ labels: { target: t, kind: 'http' }, value: i === 0 ? value : i })) };
      const parsed = parse(renderFamilies([fam]));
      expect(parsed.help.get('l2health_probe_success')).toBe(help);
      expect(parsed.type.get('l2health_probe_success')).toBe('gauge');
      expect(parsed.samples.map((s) => s.labels.target)).toEqual(targets);
      expect(parsed.samples[0]!.value).toBe(value === 0 ? 0 : value); // -0 prints as 0
    }),
    { numRuns: 500 },
  );
});

test('promtool accepts a file of many generated label values, and they read back exactly', async () => {
  const values = fc.sample(fc.uniqueArray(nasty, { minLength: 300, maxLength: 300 }), { numRuns: 1, seed: 13 })[0]!;
  const fam: Family = { name: 'l2health_sse_max_gap_seconds', type: 'gauge', help: 'gap "quoted" \\ back\nslash', samples: values.map((v, i) => ({ labels: { target: v }, value: i / 10 })) };
  const text = renderFamilies([fam]);
  const file = join(mkdtempSync(join(scratch(), 'prom-')), 'x.prom');
  writeFileSync(file, text);
  const res = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
  expect([res.exitCode, res.stdout, res.stderr]).toEqual([0, '', '']);
  expect(parse(text).samples.map((s) => s.labels.target)).toEqual(values);
});

test('the escaping of the three special characters, by example', () => {
  expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  expect(renderFamilies([{ name: 'x_total', type: 'counter', help: 'h', samples: [{ labels: { target: 'q"' }, value: 1 }] }])).toBe('# HELP x_total h\n# TYPE x_total counter\nx_total{target="q\\""} 1\n');
});

test('a lone surrogate (not writable as UTF-8) becomes U+FFFD instead of a broken file', () => {
  const text = renderFamilies([{ name: 'g', type: 'gauge', help: 'h', samples: [{ labels: { target: 'a\uD800b' }, value: 1 }] }]);
  expect(parse(text).samples[0]!.labels.target).toBe('a\uFFFDb');
});
