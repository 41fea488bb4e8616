// A second reference for the stream comparison of `npm run bench:fanout`: the naive express 5
// handler most projects start from (headers, flushHeaders, one res.write per event, res.end).
//   GET /sse/test?count=10&interval_ms=0, /healthz, /metrics
import http from 'node:http';
import express from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serve } from './serve.ts';

const registry = new Registry();
collectDefaultMetrics({ register: registry });
const app = express();

app.get('/sse/test', (_req, res) => {
  res.set({
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Headers': 'Cache-Control',
  });
  res.flushHeaders();
  for (let n = 0; n < 10; n++) {
    res.write(`event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`);
  }
  res.end();
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});
app.get('/metrics', async (_req, res) => {
  res.set('Content-Type', registry.contentType).send(await registry.metrics());
});

serve(http.createServer(app));
