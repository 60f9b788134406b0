/** A real webhook receiver on 127.0.0.1 that checks signatures with the exported verifier. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook } from '../../src/alert/verify.js';

export interface Received {
  id: string;
  body: { text: string; blocks: unknown[] };
  raw: string;
  headers: http.IncomingHttpHeaders;
  verified: boolean;
  at: number;
}

/** Every request as it arrived (pings are text, not alerts): method, path, body. */
export interface Request {
  method: string;
  path: string;
  raw: string;
  at: number;
}

export interface Receiver {
  url: string;
  /** every request, whatever the answer (webhook or ping) */
  requests: Request[];
  port: number;
  received: Received[];
  /** statuses to answer with, in order; then `fallback` */
  script: (number | { status: number; headers?: Record<string, string>; delayMs?: number; hang?: boolean })[];
  fallback: number;
  rejected: number;
  close(): Promise<void>;
}

export async function startReceiver(secret?: string, port = 0): Promise<Receiver> {
  const r = unstartedReceiver();
  await listen(r, secret, port);
  return r;
}

/**
 * The receiver for the whole test file: listening before its first test, closed after its last
 * (afterAll runs even when a test failed). The object is filled in when it starts, so tests use it
 * like the one startReceiver returns.
 */
export function withReceiver(secret?: string): Receiver {
  const r = unstartedReceiver();
  beforeAll(() => listen(r, secret, 0));
  afterAll(() => r.close());
  return r;
}

function unstartedReceiver(): Receiver {
  return { url: '', port: 0, requests: [], received: [], script: [], fallback: 200, rejected: 0, close: async () => {} };
}

async function listen(r: Receiver, secret: string | undefined, port: number): Promise<void> {
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      r.requests.push({ method: req.method ?? '', path: req.url ?? '', raw, at: Date.now() });
      const step = r.script.shift() ?? r.fallback;
      const s = typeof step === 'number' ? { status: step } : step;
      if (s.hang) return;
      const answer = () => {
        let verified = true;
        if (secret) {
          const v = verifyWebhook({ secret, rawBody: raw, timestamp: req.headers['x-l2-timestamp'] as string, signature: req.headers['x-l2-signature'] as string });
          verified = v.ok;
          if (!v.ok) {
            r.rejected++;
            res.writeHead(401).end('bad signature');
            return;
          }
        }
        if (s.status >= 200 && s.status < 300 && raw.startsWith('{')) {
          r.received.push({ id: String(req.headers['x-l2-alert-id']), body: JSON.parse(raw), raw, headers: req.headers, verified, at: Date.now() });
        }
        res.writeHead(s.status, s.headers ?? {}).end(s.status < 300 ? 'ok' : 'no');
      };
      if (s.delayMs) setTimeout(answer, s.delayMs);
      else answer();
    });
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hook`;
  r.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

/** A port that refuses connections (bound, then closed). */
export async function deadPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
