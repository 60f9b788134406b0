/**
 * One webhook message, delivered with got: a timeout per attempt, retries with backoff on
 * network errors, 5xx and 408, Retry-After honoured on 429 when it fits the budget; other 4xx
 * are not retried (the webhook looks misconfigured). Never runs past the deadline, with one
 * exception: `firstAttempt` makes one attempt (ALERT_TIMEOUT_MS, or `firstAttemptMaxMs` if
 * smaller) even when the deadline has passed, so a process slowed down by a busy machine still
 * sends its alert once.
 */

export interface WebhookTarget {
  url: string;
  secret: string | undefined;
  timeoutMs: number;
}

export type DeliveryResult =
  | { ok: true; status: number; latencyMs: number; attempts: number }
  | { ok: false; permanent: boolean; error: string; status?: number; attempts: number };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string };
  const code = e.code ?? e.name ?? 'error';
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found (DNS)',
    EAI_AGAIN: 'DNS lookup failed',
    ETIMEDOUT: 'timed out',
    EHOSTUNREACH: 'host unreachable',
    ERR_GOT_REQUEST_ERROR: 'request failed',
  };
  return words[code] ?? (e.name === 'TimeoutError' ? 'timed out' : `${code}`);
}

/** Imports what a delivery needs (got is slow to load), ahead of time. */
export async function loadClient(): Promise<void> {
  await Promise.all([import('got'), import('./verify.js')]);
}

export async function postWebhook(target: WebhookTarget, body: string, alertId: string, deadline: number, opts: { firstAttempt?: boolean; firstAttemptMaxMs?: number } = {}): Promise<DeliveryResult> {
  const { got } = await import('got');
  const { signBody, SIGNATURE_HEADER, TIMESTAMP_HEADER, ALERT_ID_HEADER } = await import('./verify.js');
  let attempts = 0;
  let lastError = 'no attempt made (alert budget used up)';
  let lastStatus: number | undefined;
  for (let backoff = 500; ; backoff = Math.min(backoff * 2, 4000)) {
    const forced = opts.firstAttempt === true && attempts === 0;
    const remaining = forced ? Math.max(deadline - Date.now(), Math.min(target.timeoutMs, opts.firstAttemptMaxMs ?? target.timeoutMs)) : deadline - Date.now();
    if (remaining < 50) break;
    attempts++;
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'l2ops-alert', [ALERT_ID_HEADER]: alertId };
    if (target.secret) {
      headers[TIMESTAMP_HEADER] = String(timestamp);
      headers[SIGNATURE_HEADER] = signBody(target.secret, timestamp, body);
    }
    const started = Date.now();
    let retryIn = backoff;
    try {
      const res = await got.post(target.url, {
        body,
        headers,
        timeout: { request: Math.max(50, Math.min(target.timeoutMs, remaining)) },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
      });
      lastStatus = res.statusCode;
      if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode, latencyMs: Date.now() - started, attempts };
      if (res.statusCode === 429) {
        const wait = parseRetryAfter(res.headers['retry-after'] as string | undefined, Date.now());
        lastError = `HTTP 429 (rate limited${wait !== undefined ? `, retry after ${Math.ceil(wait / 1000)} s` : ''})`;
        if (wait !== undefined) {
          if (Date.now() + wait > deadline - 50) break; // does not fit the budget: leave it for the next run
          retryIn = wait;
        }
      } else if (res.statusCode >= 500 || res.statusCode === 408) {
        lastError = `HTTP ${res.statusCode} from the receiver`;
      } else {
        return {
          ok: false,
          permanent: true,
          status: res.statusCode,
          attempts,
          error: `HTTP ${res.statusCode} from the receiver: the webhook looks misconfigured (check ALERT_WEBHOOK_URL and ALERT_WEBHOOK_SECRET)`,
        };
      }
    } catch (err) {
      lastError = describeNetworkError(err);
      lastStatus = undefined;
    }
    if (Date.now() + retryIn > deadline - 50) break;
    await sleep(retryIn);
  }
  return { ok: false, permanent: false, status: lastStatus, attempts, error: lastError };
}
