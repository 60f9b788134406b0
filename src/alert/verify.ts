/**
 * Signature scheme for webhook requests, and the verifier receivers can import
 * (`import { verifyWebhook } from 'l2ops/verify'`).
 *
 *   X-L2-Timestamp: <unix seconds>
 *   X-L2-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *   X-L2-Alert-Id:  <id of the first alert in the message> (drop duplicates on it)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-l2-signature';
export const TIMESTAMP_HEADER = 'x-l2-timestamp';
export const ALERT_ID_HEADER = 'x-l2-alert-id';
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signBody(secret: string, timestamp: number | string, rawBody: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex');
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export interface VerifyInput {
  secret: string;
  rawBody: string | Buffer;
  /** Header values as received (any case of names is fine if you pass them here directly). */
  timestamp: string | undefined;
  signature: string | undefined;
  toleranceSeconds?: number;
  nowSeconds?: number;
}

/** Constant-time check of the signature and a freshness check of the timestamp (replays). */
export function verifyWebhook(input: VerifyInput): VerifyResult {
  const { secret, rawBody, timestamp, signature } = input;
  if (!timestamp || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'missing or malformed timestamp header' };
  if (!signature || !/^sha256=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'missing or malformed signature header' };
  const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const tolerance = input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (Math.abs(now - Number(timestamp)) > tolerance) return { ok: false, reason: `timestamp is more than ${tolerance} s away from now (replay?)` };
  const expected = Buffer.from(signBody(secret, timestamp, rawBody));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'signature does not match' };
  return { ok: true };
}
