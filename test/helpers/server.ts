// Test helpers: an in-process server on a random port, raw HTTP exchanges and SSE readers.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createSseServer, type SseServer } from '../../services/server/src/app.ts';
import { buildServerConfig } from '../../services/server/src/config.ts';
import { createLogger } from '../../services/server/src/logger.ts';
import { STREAM_ROUTES } from '../../services/server/src/stream-routes.ts';

export interface TestServer {
  server: SseServer;
  port: number;
  base: string;
  close(): Promise<void>;
}

/** Streams open on the server, every route (what sse_connections_active shows). */
export function openStreams(server: SseServer): number {
  return STREAM_ROUTES.reduce((n, route) => n + server.streams.countByRoute(route), 0);
}

/** Subscribers of a channel on the server (the count the channel API shows for this process). */
export function subscribers(server: SseServer, channel: string): number {
  return server.hub.subscriberCount(channel);
}

/** Channels the server holds (with history or subscribers): the sse_channels gauge. */
export async function channelsHeld(server: SseServer): Promise<number> {
  return server.channels.count();
}

/** Starts a server on 127.0.0.1 with a random port; `partial` overrides config keys. */
export async function startServer(partial: Record<string, unknown> = {}): Promise<TestServer> {
  const config = buildServerConfig({ host: '127.0.0.1', port: 0, ...partial });
  const server = createSseServer(config, { logger: createLogger('silent') });
  const { port } = await server.listen();
  return {
    server,
    port,
    base: `http://127.0.0.1:${port}`,
    close: () => server.shutdown(),
  };
}

/** Sends raw request bytes and collects everything until the server closes or `until` matches. */
export async function rawExchange(
  port: number,
  request: string,
  until?: (soFar: string) => boolean,
  timeoutMs = 10_000,
): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('latin1');
  let text = '';
  const done = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw exchange timed out; got: ${JSON.stringify(text.slice(0, 500))}`));
    }, timeoutMs);
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (until?.(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on('error', () => {});
  });
  socket.write(request);
  return done;
}

/** Decodes an HTTP/1.1 chunked body (throws when the framing is broken or incomplete). */
export function dechunk(body: string): { payload: string; complete: boolean; chunks: string[] } {
  let pos = 0;
  let payload = '';
  const chunks: string[] = [];
  while (pos < body.length) {
    const eol = body.indexOf('\r\n', pos);
    if (eol < 0) return { payload, complete: false, chunks };
    const size = Number.parseInt(body.slice(pos, eol), 16);
    if (Number.isNaN(size))
      throw new Error(`bad chunk size at ${pos}: ${body.slice(pos, pos + 20)}`);
    if (size === 0) return { payload, complete: body.slice(eol + 2, eol + 4) === '\r\n', chunks };
    const chunk = body.slice(eol + 2, eol + 2 + size);
    if (body.slice(eol + 2 + size, eol + 4 + size) !== '\r\n') {
      if (eol + 4 + size > body.length) return { payload, complete: false, chunks };
      throw new Error('chunk not followed by CRLF');
    }
    chunks.push(chunk);
    payload += chunk;
    pos = eol + 4 + size;
  }
  return { payload, complete: false, chunks };
}

/** Splits a raw HTTP response into status line, header lines and body. */
export function splitResponse(raw: string): { status: string; headers: string[]; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, end).split('\r\n');
  return { status: head[0]!, headers: head.slice(1), body: raw.slice(end + 4) };
}

export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** A subscriber that parses events with eventsource-parser and can wait for a count. */
export class Subscriber {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | null = null;
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  aborted = false;
  private readonly req: http.ClientRequest;
  private waiters: { n: number; resolve: () => void }[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    const parser = createParser({
      onEvent: (e: EventSourceMessage) => {
        this.events.push({ id: e.id, event: e.event, data: e.data });
        this.waiters = this.waiters.filter((w) => {
          if (this.events.length < w.n) return true;
          w.resolve();
          return false;
        });
      },
      onComment: (c) => this.comments.push(c),
      onRetry: (r) => {
        this.retry = r;
      },
    });
    let closedResolve!: () => void;
    this.closed = new Promise((r) => {
      closedResolve = r;
    });
    this.req = http.get(url, { headers, agent: false });
    this.opened = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => parser.feed(chunk));
        res.on('end', () => {
          this.ended = true;
        });
        res.on('aborted', () => {
          this.aborted = true;
        });
        res.on('close', () => closedResolve());
        resolve();
      });
      this.req.on('error', (err) => {
        closedResolve();
        reject(err);
      });
    });
  }

  /** Resolves once `n` events arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.events.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`waited for ${n} events, got ${this.events.length}`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  close(): void {
    this.req.destroy();
  }
}

/** What the publish API and its errors answer (fields present depend on the status). */
export interface PublishBody {
  ids?: string[];
  subscribers?: number;
  error?: string;
  message?: string;
  [key: string]: unknown;
}

/** Publishes to a channel; returns status and parsed JSON body. */
export async function publish(
  base: string,
  channel: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: PublishBody; headers: Headers }> {
  const res = await fetch(`${base}/channels/${channel}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: PublishBody = { raw: text };
  try {
    parsed = JSON.parse(text) as PublishBody;
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

export { eventually } from '../../services/shared/eventually.ts';
export { once };
