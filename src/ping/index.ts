/**
 * The one pinger for outside watchers (healthchecks.io protocol): `<url>` for success,
 * `<url>/start` when a job begins, `<url>/fail` or `<url>/<exit code>` when it failed, with an
 * optional short text body (POST). l2health's dead-man's switch and l2backup's nightly pings both
 * go through here. A ping never fails its job: every outcome is a warning text or nothing.
 * node:http directly, like the health checks: a ping must not pay got's load time, and needs a
 * hard deadline on the whole exchange (a server that accepts and never answers).
 */
import http from 'node:http';
import https from 'node:https';
import { networkReason } from '../net/reason.js';

export interface PingOptions {
  /** appended to the URL's path: 'start', 'fail', '3'...; none for success */
  suffix?: string;
  /** sent as a POST body (text/plain); without it the ping is a GET */
  body?: string;
  /** bound on the whole exchange: connect, headers and body */
  timeoutMs: number;
  signal: AbortSignal;
  /** names the ping in warnings, e.g. "backup ping (BACKUP_PING_URL)"; never the URL: it is a secret */
  label: string;
}

/** healthchecks.io keeps the first 100 kB of a body; a summary needs far less. */
export const MAX_BODY_BYTES = 10_000;

/** `<url>/<suffix>`, keeping any query; the URL's own trailing slash is not doubled. */
export function pingUrl(url: string, suffix?: string): string {
  if (!suffix) return url;
  const u = new URL(url);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${encodeURIComponent(suffix)}`;
  return u.toString();
}

/** Sends one ping; resolves with a warning line when it did not land (never rejects). */
export async function ping(url: string, opts: PingOptions): Promise<string | undefined> {
  if (opts.timeoutMs < 50) return `${opts.label} skipped: the run's time budget was used up`;
  try {
    const status = await request(pingUrl(url, opts.suffix), opts);
    if (status < 200 || status >= 300) return `${opts.label} answered HTTP ${status}`;
    return undefined;
  } catch (err) {
    return `${opts.label} failed: ${networkReason(err, opts.timeoutMs)}`;
  }
}

function request(url: string, opts: PingOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const signal = AbortSignal.any([opts.signal, timeout]);
    const body = opts.body === undefined ? undefined : truncate(opts.body);
    const headers: Record<string, string | number> = { 'user-agent': 'l2ops' };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length });
    const req = lib.request(url, { method: body === undefined ? 'GET' : 'POST', headers, signal }, (res) => {
      // The whole answer must arrive in time too: a server that sends headers and stalls is down.
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(timeout.aborted ? Object.assign(new Error('timed out'), { name: 'TimeoutError' }) : err));
    req.end(body);
  });
}

function truncate(text: string): Buffer {
  const buf = Buffer.from(text, 'utf8');
  return buf.length <= MAX_BODY_BYTES ? buf : Buffer.concat([buf.subarray(0, MAX_BODY_BYTES - 16), Buffer.from('\n[truncated]')]);
}
