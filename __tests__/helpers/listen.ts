/**
 * The two halves every test proxy shares: listening on 127.0.0.1 with its connections tracked
 * (so closing it ends kept-alive sockets too, and never waits on a client that holds one), and
 * passing a request through to the real server unchanged (so the S3 signature still holds).
 */
import http from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';

export interface Listening {
  url: string;
  port: number;
  /** destroys every open connection, then stops listening */
  close(): Promise<void>;
}

const socketsOf = new WeakMap<Server, Set<Socket>>();

function trackedSockets(server: Server): Set<Socket> {
  let sockets = socketsOf.get(server);
  if (!sockets) {
    const set = new Set<Socket>();
    server.on('connection', (s: Socket) => {
      set.add(s);
      s.on('close', () => set.delete(s));
    });
    socketsOf.set(server, set);
    sockets = set;
  }
  return sockets;
}

/** Listens on 127.0.0.1 at `port` (0: any free one). Call again with the same port to listen again after close(). */
export async function listenLocal(server: Server, port = 0): Promise<Listening> {
  const sockets = trackedSockets(server);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * Sends `req` on to `upstream` as it came (its body, or `body` when given: a stream that alters it). `onAnswer` gets the server's answer to handle itself;
 * by default it is piped back unchanged. An upstream error drops the client's connection.
 */
export function passThrough(req: http.IncomingMessage, res: http.ServerResponse, upstream: URL, onAnswer?: (answer: http.IncomingMessage) => void, body: NodeJS.ReadableStream = req): void {
  const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    if (onAnswer) return onAnswer(answer);
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  up.on('error', () => res.socket?.destroy());
  body.pipe(up);
}
