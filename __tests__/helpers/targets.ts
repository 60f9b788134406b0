/** Real HTTP and SSE servers on 127.0.0.1 that behave like healthy and broken L2 Dash services. */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * Delays far from the thresholds the tests set (l2health.test.ts), so a busy machine's
 * scheduling noise (hundreds of ms) never moves a result across one.
 */
export const SLOW_MS = 9000;
export const GAP_MS = 9000;

export interface Targets {
  base: string;
  hangPort: number;
  pings: number;
  /** switch /flaky between 200 and 500 */
  flakyStatus: number;
  close(): Promise<void>;
}

export interface TargetOptions {
  slowMs?: number;
}

export async function startTargets(opts: TargetOptions = {}): Promise<Targets> {
  const t = unstartedTargets();
  await listen(t, opts);
  return t;
}

/**
 * The targets for the whole test file: listening before its first test, closed after its last
 * (afterAll runs even when a test failed). The object is filled in when they start, so tests use
 * it like the one startTargets returns.
 */
export function withTargets(opts: TargetOptions = {}): Targets {
  const t = unstartedTargets();
  beforeAll(() => listen(t, opts));
  afterAll(() => t.close());
  return t;
}

function unstartedTargets(): Targets {
  return { base: '', hangPort: 0, pings: 0, flakyStatus: 200, close: async () => {} };
}

async function listen(t: Targets, opts: TargetOptions): Promise<void> {
  const slowMs = opts.slowMs ?? SLOW_MS;
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const sse = (res: http.ServerResponse, type = 'text/event-stream') => res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
  const server = http.createServer((req, res) => {
    switch (req.url) {
      case '/health':
        res.end('{"status":"ok"}');
        return;
      case '/error':
        res.writeHead(500).end('boom');
        return;
      case '/flaky':
        res.writeHead(t.flakyStatus).end();
        return;
      case '/slow': {
        const timer = setTimeout(() => res.end('ok'), slowMs);
        timers.add(timer);
        return;
      }
      case '/auth':
        res.writeHead(req.headers.authorization === 'Bearer s3cret-token-xyz' ? 200 : 401).end();
        return;
      case '/ping':
        t.pings++;
        res.end('OK');
        return;
      case '/headers-then-silence':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        return;
      case '/sse/events': {
        sse(res);
        res.write('event: book\ndata: {"bid":1}\n\n');
        const i = setInterval(() => res.write('data: {"bid":2}\n\n'), 100);
        timers.add(i);
        req.on('close', () => clearInterval(i));
        return;
      }
      case '/sse/heartbeat': {
        sse(res);
        const i = setInterval(() => res.write(': heartbeat\n\n'), 150);
        timers.add(i);
        req.on('close', () => clearInterval(i));
        return;
      }
      case '/sse/silent':
        sse(res);
        res.flushHeaders();
        return;
      case '/sse/wrong-type':
        sse(res, 'text/html');
        res.end('<html></html>');
        return;
      case '/sse/one-and-close':
        sse(res);
        res.end('data: only one\n\n');
        return;
      case '/sse/crlf': {
        sse(res);
        res.write('retry: 1000\r\nevent: tick\r\ndata: 1\r\n\r\n');
        return;
      }
      case '/sse/gappy': {
        sse(res);
        res.write('data: first\n\n');
        const timer = setTimeout(() => res.write('data: late\n\n'), GAP_MS);
        timers.add(timer);
        return;
      }
      case '/sse/no-newline':
      case '/sse/huge-frame': {
        // Bytes as fast as the client takes them, never ending a line (after one good frame for huge-frame).
        sse(res);
        if (req.url === '/sse/huge-frame') res.write(': hello\n\n');
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let open = true;
        const pump = () => {
          while (open && res.write(chunk));
        };
        res.on('drain', pump);
        req.on('close', () => (open = false));
        res.on('close', () => (open = false));
        pump();
        return;
      }
      default:
        res.writeHead(404).end();
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Accepts connections and never says a word.
  const hang = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  t.hangPort = (hang.address() as AddressInfo).port;
  t.close = async () => {
    for (const timer of timers) clearTimeout(timer);
    for (const s of sockets) s.destroy();
    await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => hang.close(r))]);
  };
}
