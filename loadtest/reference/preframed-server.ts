// The reference peer for `npm run bench:fanout`: a minimal raw node:http server that speaks the
// same subset of the protocol and writes each event as ONE pre-framed chunk
// (`<hex>\r\n<event>\r\n`) straight to every subscriber's socket: one write per subscriber per
// event, no per-subscriber framing work. No limits, no auth, no history: a yardstick, not a
// product.
//   GET  /sse/test?count=10&interval_ms=0   the example's ten events, in one write
//   GET  /sse/channels/:channel             subscribe (retry line, then live events)
//   POST /channels/:channel/events          {"event"?, "data"} or an array -> 202 {ids, subscribers}
//   GET  /metrics, /healthz
import http from 'node:http';
import type { Socket } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serve } from './serve.ts';

const registry = new Registry();
collectDefaultMetrics({ register: registry });

const HEADERS = {
  Connection: 'keep-alive',
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  'Transfer-Encoding': 'chunked',
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Cache-Control',
};
let demo = '';
for (let n = 0; n < 10; n++)
  demo += `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
const DEMO = Buffer.from(demo);

const channels = new Map<string, { subscribers: Set<Socket>; lastId: number }>();
const channelOf = (name: string) => {
  let ch = channels.get(name);
  if (!ch) {
    ch = { subscribers: new Set(), lastId: 0 };
    channels.set(name, ch);
  }
  return ch;
};

function frame(payload: Buffer): Buffer {
  const head = Buffer.from(`${payload.length.toString(16)}\r\n`, 'latin1');
  return Buffer.concat([head, payload, Buffer.from('\r\n', 'latin1')]);
}
const RETRY = frame(Buffer.from('retry: 2000\n\n'));

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/sse/test')) {
    res.writeHead(200, HEADERS);
    res.end(DEMO);
    return;
  }
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
  const publish = /^\/channels\/([^/]+)\/events$/.exec(url);
  if (req.method === 'POST' && publish) {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      const items = (Array.isArray(body) ? body : [body]) as { event?: string; data: unknown }[];
      const ch = channelOf(publish[1]!);
      const ids: number[] = [];
      let text = '';
      for (const item of items) {
        const id = ++ch.lastId;
        ids.push(id);
        const data = typeof item.data === 'string' ? item.data : JSON.stringify(item.data);
        text += `${item.event ? `event: ${item.event}\n` : ''}data: ${data.split(/\r\n|\r|\n/).join('\ndata: ')}\nid: ${id}\n\n`;
      }
      const chunk = frame(Buffer.from(text));
      for (const socket of ch.subscribers) socket.write(chunk);
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
