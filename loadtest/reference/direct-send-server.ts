// A reference for `npm run bench:fanout`, "like C epoll, one send per subscriber per event": each
// published event is framed once as an HTTP/1.1 chunk (`<hex>\r\n<event>\r\n`) and handed to every
// subscriber's socket with ONE write(2) each (fs.writeSync on the socket's descriptor: no stream
// machinery, no coalescing), as a C server would send() it. When the kernel cannot take it all
// (EAGAIN or a partial write) the rest goes to the socket's own queue, and the following events
// follow it there until it has drained (libuv's epoll flushes it), so the order holds.
//
// REFERENCE_MODE=coalesce turns it into the receiver's ceiling: a channel's events are gathered and
// sent as one chunk per subscriber at most once per interval, the longer of REFERENCE_FLUSH_MS
// (default 25) and four times what the last flush took (so flushing takes at most a fifth of a
// core, however many subscribers), whatever the rate: the receiving side is what gives out. An
// event waits up to one interval; the ceiling's own delivery latency shows in its bench rows.
//
// No limits, no auth, no history: a yardstick, not a product.
//   GET  /sse/channels/:channel             subscribe (retry line, then live events)
//   POST /channels/:channel/events          {"event"?, "data"} or an array -> 202 {ids, subscribers}
//   GET  /metrics, /healthz
import { writeSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serve } from './serve.ts';

const registry = new Registry();
collectDefaultMetrics({ register: registry });

const COALESCE = process.env.REFERENCE_MODE === 'coalesce';
const FLUSH_MS = Number(process.env.REFERENCE_FLUSH_MS ?? 25);

const HEADERS = {
  Connection: 'keep-alive',
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  'Transfer-Encoding': 'chunked',
};

interface Channel {
  subscribers: Set<Socket>;
  lastId: number;
  /** coalesce: the events since the last flush, its timer, when it ran and the next may. */
  pending: string;
  timer: ReturnType<typeof setTimeout> | null;
  flushedAt: number;
  intervalMs: number;
}

const channels = new Map<string, Channel>();
const channelOf = (name: string) => {
  let ch = channels.get(name);
  if (!ch) {
    ch = {
      subscribers: new Set(),
      lastId: 0,
      pending: '',
      timer: null,
      flushedAt: 0,
      intervalMs: FLUSH_MS,
    };
    channels.set(name, ch);
  }
  return ch;
};

function frame(payload: Buffer): Buffer {
  const head = Buffer.from(`${payload.length.toString(16)}\r\n`, 'latin1');
  return Buffer.concat([head, payload, Buffer.from('\r\n', 'latin1')]);
}
const RETRY = frame(Buffer.from('retry: 2000\n\n'));

/** The socket's file descriptor (libuv's handle), or -1 once it is closing or closed. */
function descriptor(socket: Socket): number {
  if (socket.destroyed) return -1;
  const handle = (socket as unknown as { _handle: { fd?: number } | null })._handle;
  return handle?.fd ?? -1;
}

/** One write(2) of `chunk`; what the kernel does not take waits in the socket's own queue. */
function send(socket: Socket, chunk: Buffer): void {
  const fd = descriptor(socket);
  if (fd < 0) return;
  if (socket.writableLength > 0) {
    socket.write(chunk);
    return;
  }
  let sent = 0;
  try {
    sent = writeSync(fd, chunk);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') {
      socket.destroy();
      return;
    }
  }
  if (sent < chunk.length) socket.write(chunk.subarray(sent));
}

function sendToAll(ch: Channel, text: string): void {
  const chunk = frame(Buffer.from(text));
  for (const socket of ch.subscribers) send(socket, chunk);
}

function flush(ch: Channel): void {
  ch.timer = null;
  const text = ch.pending;
  ch.pending = '';
  ch.flushedAt = performance.now();
  if (text !== '') sendToAll(ch, text);
  ch.intervalMs = Math.max(FLUSH_MS, 4 * (performance.now() - ch.flushedAt));
}

function publish(ch: Channel, items: { event?: string; data: unknown }[]): number[] {
  const ids: number[] = [];
  for (const item of items) {
    const id = ++ch.lastId;
    ids.push(id);
    const data = typeof item.data === 'string' ? item.data : JSON.stringify(item.data);
    const text = `${item.event ? `event: ${item.event}\n` : ''}data: ${data.split(/\r\n|\r|\n/).join('\ndata: ')}\nid: ${id}\n\n`;
    if (!COALESCE) sendToAll(ch, text);
    else {
      ch.pending += text;
      const wait = ch.flushedAt + ch.intervalMs - performance.now();
      ch.timer ??= setTimeout(flush, Math.max(0, wait), ch);
    }
  }
  return ids;
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/sse/channels/')) {
    const ch = channelOf(url.slice('/sse/channels/'.length).split('?')[0]!);
    const socket = req.socket;
    socket.setNoDelay(true);
    socket.cork();
    res.writeHead(200, HEADERS);
    res.flushHeaders();
    socket.write(RETRY);
    socket.uncork();
    ch.subscribers.add(socket);
    res.on('close', () => ch.subscribers.delete(socket));
    return;
  }
  const path = /^\/channels\/([^/]+)\/events$/.exec(url);
  if (req.method === 'POST' && path) {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      const items = (Array.isArray(body) ? body : [body]) as { event?: string; data: unknown }[];
      const ch = channelOf(path[1]!);
      const ids = publish(ch, items);
      res.writeHead(202, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ids, subscribers: ch.subscribers.size }));
    });
    return;
  }
  if (url === '/metrics') {
    registry.metrics().then((text) => {
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(text);
    });
    return;
  }
  if (url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"status":"ok"}');
    return;
  }
  res.writeHead(404);
  res.end();
});

serve(server);
