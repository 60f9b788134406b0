/** HTTP health check: GET, expected status (default 2xx) within the timeout; slower than the threshold is DEGRADED. */
import type { HealthTarget } from '../config/index.js';
import type { CheckResult } from './types.js';
import { networkReason } from './probe-errors.js';

export async function checkHttp(t: HealthTarget, signal: AbortSignal): Promise<CheckResult> {
  const { got } = await import('got');
  const started = performance.now();
  try {
    const res = await got(t.url, {
      headers: { 'user-agent': 'l2health', ...t.headers },
      timeout: { request: t.timeoutMs },
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: false,
      signal,
    });
    const latencyMs = Math.round(performance.now() - started);
    const ok = t.expectStatus.length ? t.expectStatus.includes(res.statusCode) : res.statusCode >= 200 && res.statusCode < 300;
    if (!ok) return { name: t.name, kind: 'http', status: 'down', latencyMs, httpStatus: res.statusCode, reason: `HTTP ${res.statusCode} (expected ${t.expectStatus.length ? t.expectStatus.join(' or ') : '2xx'})` };
    if (latencyMs > t.latencyWarnMs) return { name: t.name, kind: 'http', status: 'degraded', latencyMs, httpStatus: res.statusCode, reason: `slow: ${latencyMs} ms (threshold ${t.latencyWarnMs} ms)` };
    return { name: t.name, kind: 'http', status: 'up', latencyMs, httpStatus: res.statusCode, reason: `HTTP ${res.statusCode}` };
  } catch (err) {
    return { name: t.name, kind: 'http', status: 'down', latencyMs: Math.round(performance.now() - started), reason: networkReason(err, t.timeoutMs) };
  }
}
