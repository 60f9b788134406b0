/**
 * The delivery budget bounds retries, never the first attempt: a process whose budget was used
 * up before it could send (a slow start beside a busy disk, a long lock wait) still sends its
 * alert once. Found beside a cp -a hog: five alert tests saw "no attempt made (alert budget
 * used up)" and the alert never left the machine.
 */
import { postWebhook } from '../src/alert/webhook.js';
import { withReceiver } from './helpers/receiver.js';

const r = withReceiver();

test('a deadline already passed: the first attempt is still made, and only one', async () => {
  const before = r.received.length;
  const res = await postWebhook({ url: r.url, secret: undefined, timeoutMs: 5000 }, '{"text":"late"}', 'late-1', Date.now() - 1000, { firstAttempt: true });
  expect(res).toMatchObject({ ok: true, attempts: 1 });
  expect(r.received.length).toBe(before + 1);
});

test('a deadline already passed and an attempt already made in this process: nothing more is sent', async () => {
  const before = r.received.length;
  const res = await postWebhook({ url: r.url, secret: undefined, timeoutMs: 5000 }, '{"text":"later"}', 'late-2', Date.now() - 1000);
  expect(res).toMatchObject({ ok: false, attempts: 0 });
  expect(r.received.length).toBe(before);
});
