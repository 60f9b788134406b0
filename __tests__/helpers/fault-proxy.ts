/**
 * An HTTP fault proxy on 127.0.0.1 in front of the S3 server or the webhook receiver. Each
 * request takes the next fault from `faults` (then passes through): refused connections,
 * a reset in the middle of the request body, a delay past the client's timeout, 500/503,
 * 429 with Retry-After, a truncated response body; or, with `hang` set, a server that accepts
 * every connection and never answers (with `hangIf`, only the requests it picks).
 */
import http from 'node:http';
import { listenLocal, passThrough } from './listen.js';

export type Fault = 'pass' | 'reset' | 'delay' | '500' | '503' | '429' | 'truncate';

export interface FaultProxy {
  url: string;
  port: number;
  faults: Fault[];
  seen: Fault[];
  /** every request that reached the proxy, in order (a recording proxy) */
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  delayMs: number;
  /** accept and never answer, every request, until cleared */
  hang: boolean;
  /** accept and never answer the requests this picks (e.g. only UploadPart); every other request as usual */
  hangIf?: (req: http.IncomingMessage) => boolean;
  /** requests left hanging so far */
  hung: number;
  /** false between refuse() and accept() */
  listening: boolean;
  refuse(): Promise<void>;
  accept(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const p = unstartedProxy();
  await listenProxy(p, upstream);
  return p;
}

/**
 * A proxy for the whole test file in front of `upstream()` (read when it starts, after the
 * servers set up before it): listening before the file's first test, closed after its last
 * (afterAll runs even when a test failed). The object is filled in when it starts, so tests use
 * it like the one startFaultProxy returns.
 */
export function withFaultProxy(upstream: () => string): FaultProxy {
  const p = unstartedProxy();
  beforeAll(() => listenProxy(p, upstream()));
  afterAll(() => p.close());
  return p;
}

function unstartedProxy(): FaultProxy {
  return { url: '', port: 0, faults: [], seen: [], requests: [], delayMs: 10_000, hang: false, hung: 0, listening: true, refuse: async () => {}, accept: async () => {}, close: async () => {} };
}

async function listenProxy(p: FaultProxy, upstream: string): Promise<void> {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    p.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (p.hang || p.hangIf?.(req)) {
      p.hung++;
      return;
    }
    const fault = p.faults.shift() ?? 'pass';
    p.seen.push(fault);
    if (fault === 'reset') {
      req.once('data', () => req.socket.destroy());
      req.once('end', () => req.socket.destroy());
      return;
    }
    if (fault === '500' || fault === '503' || fault === '429') {
      req.resume();
      req.on('end', () => {
        const headers: Record<string, string> = { 'content-type': 'application/xml' };
        if (fault === '429') headers['retry-after'] = '1';
        const code = fault === '429' ? 'SlowDown' : fault === '503' ? 'ServiceUnavailable' : 'InternalError';
        res.writeHead(Number(fault), headers).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`);
      });
      return;
    }
    const forward = () =>
      passThrough(req, res, target, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (fault !== 'truncate') return void ur.pipe(res);
        let sent = false;
        ur.on('data', (chunk: Buffer) => {
          if (sent) return;
          sent = true;
          res.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)));
          res.socket?.destroy();
        });
        ur.on('end', () => res.socket?.destroy());
      });
    if (fault === 'delay') setTimeout(forward, p.delayMs);
    else forward();
  });
  let listening = await listenLocal(server);
  p.port = listening.port;
  p.url = listening.url;
  p.refuse = async () => {
    if (!p.listening) return;
    p.listening = false;
    await listening.close();
  };
  p.accept = async () => {
    if (p.listening) return;
    listening = await listenLocal(server, p.port);
    p.listening = true;
  };
  p.close = () => listening.close();
}
