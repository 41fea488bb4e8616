// A reference for `npm run bench:fanout`: the same routes on better-sse (a maintained SSE library
// for Node): one better-sse Channel per channel name, sessions registered on subscribe, a publish
// is one channel.broadcast (better-sse gives each event its own random id).
//   GET  /sse/test?count=10&interval_ms=0   the example's ten events
//   GET  /sse/channels/:channel             subscribe (live events only)
//   POST /channels/:channel/events          {"event"?, "data"} -> 202 {ids, subscribers}
//   GET  /healthz, /metrics
import http from 'node:http';
import { type Channel, createChannel, createSession } from 'better-sse';
import express from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serve } from './serve.ts';

const registry = new Registry();
collectDefaultMetrics({ register: registry });
const app = express();
const channels = new Map<string, Channel>();
const channelOf = (name: string) => {
  let ch = channels.get(name);
  if (!ch) {
    ch = createChannel();
    channels.set(name, ch);
  }
  return ch;
};

app.get('/sse/test', async (req, res) => {
  const session = await createSession(req, res, { keepAlive: null, retry: null });
  for (let n = 0; n < 10; n++) {
    session.push(`{"msg": "hello", "idx": ${n}}`, 'message', String(n));
  }
  res.end();
});
app.get('/sse/channels/:channel', async (req, res) => {
  // Data is sent as given (already JSON text), not JSON-encoded a second time.
  const session = await createSession(req, res, { serializer: (d) => String(d) });
  channelOf(req.params.channel).register(session);
});
app.post('/channels/:channel/events', express.json({ limit: '1mb' }), (req, res) => {
  const body = req.body as { event?: string; data?: unknown };
  const data = typeof body.data === 'string' ? body.data : JSON.stringify(body.data);
  const ch = channelOf(req.params.channel);
  let id = '';
  const onBroadcast = (_d: unknown, _e: string, eventId: string) => {
    id = eventId;
  };
  ch.once('broadcast', onBroadcast);
  ch.broadcast(data, body.event ?? 'message');
  res.status(202).json({ ids: [id], subscribers: ch.sessionCount });
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});
app.get('/metrics', async (_req, res) => {
  res.set('Content-Type', registry.contentType).send(await registry.metrics());
});

serve(http.createServer(app));
