// GET /healthz (the process answers), GET /readyz (it takes streams and publishes: not draining,
// broker up) and GET /metrics (Prometheus text). Other methods: 405.
import express from 'express';
import type { Broker } from '../broker/broker.ts';
import { methodNotAllowed } from '../http/method-not-allowed.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { ServerMetrics } from '../metrics.ts';

export function healthRouter(deps: {
  broker: Broker;
  lifecycle: Lifecycle;
  metrics: ServerMetrics;
}): express.Router {
  const { broker, lifecycle, metrics } = deps;
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.all('/healthz', methodNotAllowed('GET, HEAD'));
  router.get('/readyz', (_req, res) => {
    const state = { type: broker.type, up: broker.up };
    if (lifecycle.draining) res.status(503).json({ status: 'shutting_down', broker: state });
    else if (!broker.up) res.status(503).json({ status: 'broker_down', broker: state });
    else res.json({ status: 'ready', broker: state });
  });
  router.all('/readyz', methodNotAllowed('GET, HEAD'));
  router.get('/metrics', async (_req, res, next) => {
    try {
      const text = await metrics.registry.metrics();
      res.set('Content-Type', metrics.registry.contentType).send(text);
    } catch (err) {
      next(err);
    }
  });
  router.all('/metrics', methodNotAllowed('GET, HEAD'));
  return router;
}
