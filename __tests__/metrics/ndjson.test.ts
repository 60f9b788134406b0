/** The NDJSON writer: whatever a message holds, one object per line, secrets masked, summary last. */
import fc from 'fast-check';
import { Writable } from 'node:stream';
import { Output } from '../../src/output/index.js';

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  return { stream, text: () => text };
}

test('any warning, error or alert text becomes exactly one JSON line, secrets masked; the summary is last and alone after', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('warn', 'error', 'alert', 'info', 'print'), fc.string({ unit: 'binary' })), { maxLength: 20 }), fc.string({ minLength: 6, unit: fc.constantFrom('a', '"', '\\', '\n', 'é', 'x', '\u2028') }), (events, secret) => {
      const stdout = capture();
      const stderr = capture();
      const out = new Output('l2backup', { stdout: stdout.stream, stderr: stderr.stream, env: {} });
      out.addSecrets([secret]);
      const w = out.startNdjson('nightly');
      for (const [kind, text] of events) {
        const msg = `${text}${secret}${text}`;
        if (kind === 'warn') out.warn(msg);
        else if (kind === 'error') out.error(msg);
        else if (kind === 'alert') out.alert('error', msg);
        else if (kind === 'info') out.info(msg);
        else out.print(msg);
      }
      out.addSummary({ error: `failed: ${secret}` });
      w.summary(1);
      out.warn('after the summary');
      const lines = stdout.text().split('\n');
      expect(lines.pop()).toBe('');
      const parsed = lines.map((l) => JSON.parse(l));
      expect(parsed).toHaveLength(events.filter(([k]) => k === 'warn' || k === 'error' || k === 'alert').length + 1);
      expect(parsed[parsed.length - 1]).toMatchObject({ message_type: 'summary', exit_code: 1, outcome: 'failed', error: 'failed: ****' });
      for (const p of parsed) expect(JSON.stringify(p)).not.toContain(JSON.stringify(secret).slice(1, -1));
    }),
    { numRuns: 300 },
  );
});
