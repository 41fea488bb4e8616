// A reference for `npm run bench:fanout`: the naive express 5 handlers most projects start from
// (headers, flushHeaders, one res.write per event per subscriber, express.json for publishes).
//   GET  /sse/test?count=10&interval_ms=0   the example's ten events
//   GET  /sse/channels/:channel             subscribe (live events only)
//   POST /channels/:channel/events          {"event"?, "data"} -> 202 {ids, subscribers}
//   GET  /healthz, /metrics
import http from 'node:http';
import express, { type Response } from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serve } from './serve.ts';

const registry = new Registry();
collectDefaultMetrics({ register: registry });
const app = express();
const channels = new Map<string, Set<Response>>();
let lastId = 0;

const sseHeaders = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  Connection: 'keep-alive',
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Cache-Control',
};

app.get('/sse/test', (_req, res) => {
  res.set(sseHeaders);
  res.flushHeaders();
  for (let n = 0; n < 10; n++) {
    res.write(`event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`);
  }
  res.end();
});
app.get('/sse/channels/:channel', (req, res) => {
  res.set(sseHeaders);
  res.flushHeaders();
  res.write('retry: 2000\n\n');
  let subs = channels.get(req.params.channel);
  if (!subs) {
    subs = new Set();
    channels.set(req.params.channel, subs);
  }
  subs.add(res);
  res.on('close', () => subs.delete(res));
});
app.post('/channels/:channel/events', express.json({ limit: '1mb' }), (req, res) => {
  const body = req.body as { event?: string; data?: unknown };
  const data = typeof body.data === 'string' ? body.data : JSON.stringify(body.data);
  const id = String(++lastId);
  const subs = channels.get(req.params.channel) ?? new Set<Response>();
  for (const s of subs) {
    s.write(`${body.event ? `event: ${body.event}\n` : ''}data: ${data}\nid: ${id}\n\n`);
  }
  res.status(202).json({ ids: [id], subscribers: subs.size });
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});
app.get('/metrics', async (_req, res) => {
  res.set('Content-Type', registry.contentType).send(await registry.metrics());
});

serve(http.createServer(app));
