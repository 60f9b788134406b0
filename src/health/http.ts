/**
 * HTTP health check: GET, expected status (default 2xx) within the timeout; slower than the
 * threshold is DEGRADED. Uses node:http directly rather than got: a check run every five
 * minutes should not pay got's ~120 ms load time (bench/health.mjs), and a GET with a
 * deadline needs nothing got adds.
 */
import http from 'node:http';
import https from 'node:https';
import type { HealthTarget } from '../config/index.js';
import type { CheckResult } from './types.js';
import { networkReason } from '../net/reason.js';

/** GET `url`, reading the whole body; resolves with the status, rejects on error or timeout. */
export function httpGet(url: string, headers: Record<string, string>, timeoutMs: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const timeout = AbortSignal.timeout(timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    const req = lib.get(url, { headers: { 'user-agent': 'l2health', ...headers }, signal: both }, (res) => {
      // The whole body must arrive in time too: a server that sends headers and stalls is down.
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(timeout.aborted ? Object.assign(new Error('timed out'), { name: 'TimeoutError' }) : err));
  });
}

export async function checkHttp(t: HealthTarget, signal: AbortSignal): Promise<CheckResult> {
  const started = performance.now();
  try {
    const status = await httpGet(t.url, t.headers, t.timeoutMs, signal);
    const latencyMs = Math.round(performance.now() - started);
    const ok = t.expectStatus.length ? t.expectStatus.includes(status) : status >= 200 && status < 300;
    if (!ok) return { name: t.name, kind: 'http', status: 'down', latencyMs, httpStatus: status, reason: `HTTP ${status} (expected ${t.expectStatus.length ? t.expectStatus.join(' or ') : '2xx'})` };
    if (latencyMs > t.latencyWarnMs) return { name: t.name, kind: 'http', status: 'degraded', latencyMs, httpStatus: status, reason: `slow: ${latencyMs} ms (threshold ${t.latencyWarnMs} ms)` };
    return { name: t.name, kind: 'http', status: 'up', latencyMs, httpStatus: status, reason: `HTTP ${status}` };
  } catch (err) {
    return { name: t.name, kind: 'http', status: 'down', latencyMs: Math.round(performance.now() - started), reason: networkReason(err, t.timeoutMs) };
  }
}
