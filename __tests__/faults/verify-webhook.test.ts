/** The exported verifier rejects replayed, tampered and forged requests, and accepts a good one. */
import { signBody, verifyWebhook } from '../../src/alert/verify.js';

const secret = 'receiver-side-secret';
const body = JSON.stringify({ text: '[ERROR] algo DOWN' });
const now = 1_760_000_000;

test('a fresh, untouched request passes', () => {
  expect(verifyWebhook({ secret, rawBody: body, timestamp: String(now), signature: signBody(secret, now, body), nowSeconds: now + 5 })).toEqual({ ok: true });
});

test('a replay older than 300 s is rejected', () => {
  const res = verifyWebhook({ secret, rawBody: body, timestamp: String(now), signature: signBody(secret, now, body), nowSeconds: now + 301 });
  expect(res).toEqual({ ok: false, reason: expect.stringMatching(/more than 300 s/) });
});

test('a tampered body, a moved timestamp or another secret is rejected', () => {
  const sig = signBody(secret, now, body);
  expect(verifyWebhook({ secret, rawBody: body.replace('DOWN', 'UP'), timestamp: String(now), signature: sig, nowSeconds: now }).ok).toBe(false);
  expect(verifyWebhook({ secret, rawBody: body, timestamp: String(now + 1), signature: sig, nowSeconds: now }).ok).toBe(false);
  expect(verifyWebhook({ secret: 'other', rawBody: body, timestamp: String(now), signature: sig, nowSeconds: now }).ok).toBe(false);
});

test('missing or malformed headers are rejected without throwing', () => {
  expect(verifyWebhook({ secret, rawBody: body, timestamp: undefined, signature: undefined }).ok).toBe(false);
  expect(verifyWebhook({ secret, rawBody: body, timestamp: 'soon', signature: 'sha256=zz' }).ok).toBe(false);
  expect(verifyWebhook({ secret, rawBody: body, timestamp: String(now), signature: 'sha256=' + 'a'.repeat(63), nowSeconds: now }).ok).toBe(false);
});
