// Stub SSE servers for the client tests: tiny node:http servers whose handlers send exact bytes.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

/** The example stream: 10 events, ids 1..10 (idx = N). */
export function exampleEvent(n: number): string {
  return `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
}

export function exampleLine(n: number): string {
  return `Received SSE event - id: ${n}, event: message, data: {"msg": "hello", "idx": ${n}}`;
}

export interface SeenRequest {
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => unknown;

export interface StubServer {
  port: number;
  url: (path?: string) => string;
  requests: SeenRequest[];
  /** Resolves once `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a node:http server on 127.0.0.1:0 whose handler gets the request number (1-based). */
export async function startStub(handler: Handler): Promise<StubServer> {
  const requests: SeenRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve();
    res.on('error', () => {});
    Promise.resolve(handler(req, res, requests.length)).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: (path = '/sse') => `http://127.0.0.1:${port}${path}`,
    requests,
    waitForRequests(n, timeoutMs = 10_000) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`waited for ${n} requests, got ${requests.length}`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
