// Builds the server: the node:http server, the SSE core in front (stream routes), express behind
// it (publish, health, metrics, errors), and the graceful shutdown.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Broker } from './broker/broker.ts';
import { createBroker } from './broker/create-broker.ts';
import type { ServerConfig } from './config.ts';
import { Cors } from './http/cors.ts';
import { HttpError } from './http/errors.ts';
import { MAX_JSON_DEPTH, verifyJsonDepth } from './http/json-depth.ts';
import {
  lastResort,
  missingHost,
  refuseConnect,
  refuseExpectation,
} from './http/request-guards.ts';
import {
  boundedServerOptions,
  closeSilentSockets,
  limitSockets,
  onClientError,
} from './http/socket-limits.ts';
import type { Logger } from './logger.ts';
import { createServerMetrics, type ServerMetrics } from './metrics.ts';
import { publishGuard, publishHandler } from './routes/publish.ts';
import { StreamRouter } from './routes/stream-router.ts';
import { viewerRouter } from './routes/viewer.ts';
import { Hub } from './sse/hub.ts';
import { ConnectionRegistry } from './sse/registry.ts';

export interface SseServer {
  readonly config: ServerConfig;
  readonly http: Server;
  readonly metricsHttp: Server | null;
  readonly registry: ConnectionRegistry;
  readonly hub: Hub;
  readonly broker: Broker;
  readonly metrics: ServerMetrics;
  /**
   * Starts the broker (a Redis broker that cannot connect yet keeps retrying: publishes answer 503
   * meanwhile), then listens on config.host:config.port and the metrics port.
   */
  listen(): Promise<AddressInfo>;
  /** Graceful: readiness false, streams ended with a randomized retry, exit within the timeout. */
  shutdown(): Promise<void>;
}

export interface ServerDeps {
  logger: Logger;
  broker?: Broker;
}

const BODY_ERRORS: Record<string, [number, string]> = {
  'entity.too.large': [413, 'payload_too_large'],
  'entity.parse.failed': [400, 'bad_request'],
  'entity.verify.failed': [400, 'bad_request'],
  'json.too_deep': [400, 'bad_request'],
  'encoding.unsupported': [415, 'unsupported_media_type'],
  'charset.unsupported': [415, 'unsupported_media_type'],
};

function methodNotAllowed(allow: string) {
  return (req: Request, res: Response) => {
    res
      .status(405)
      .set('Allow', allow)
      .json({ error: 'method_not_allowed', message: `${req.method} is not allowed here` });
  };
}

function buildExpress(
  config: ServerConfig,
  deps: {
    hub: Hub;
    broker: Broker;
    registry: ConnectionRegistry;
    metrics: ServerMetrics;
    cors: Cors;
    logger: Logger;
  },
): express.Express {
  const { hub, broker, registry, metrics, cors, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.use((req: Request, res: Response, next: NextFunction) => {
    const start = performance.now();
    res.once('finish', () => {
      const route = req.route?.path ? String(req.route.path) : 'unmatched';
      metrics.httpRequestDuration
        .labels({ method: req.method, route, status_code: String(res.statusCode) })
        .observe((performance.now() - start) / 1000);
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.all('/healthz', methodNotAllowed('GET, HEAD'));
  app.get('/readyz', (_req, res) => {
    const state = { type: broker.type, up: broker.up };
    if (registry.draining) res.status(503).json({ status: 'shutting_down', broker: state });
    else if (!broker.up) res.status(503).json({ status: 'broker_down', broker: state });
    else res.json({ status: 'ready', broker: state });
  });
  app.all('/readyz', methodNotAllowed('GET, HEAD'));
  app.get('/metrics', async (_req, res, next) => {
    try {
      const text = await metrics.registry.metrics();
      res.set('Content-Type', metrics.registry.contentType).send(text);
    } catch (err) {
      next(err);
    }
  });
  app.all('/metrics', methodNotAllowed('GET, HEAD'));

  const publishPath = '/channels/:channel/events';
  app.options(publishPath, (req, res) => {
    res.set(cors.preflightHeaders(req.headers, 'POST, OPTIONS') as Record<string, string>);
    res.status(204).end();
  });
  app.post(
    publishPath,
    (req, res, next) => {
      res.set(cors.responseHeaders(req.headers));
      next();
    },
    publishGuard(config),
    express.json({
      limit: config.channels.maxBodyBytes,
      type: () => true,
      strict: false,
      verify: verifyJsonDepth,
    }),
    publishHandler(config, hub),
  );
  app.all(
    publishPath,
    (req, res, next) => {
      res.set(cors.responseHeaders(req.headers));
      next();
    },
    methodNotAllowed('POST, OPTIONS'),
  );

  app.use(viewerRouter());

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: 'not_found', message: `no route for ${req.method} ${req.path}` });
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      res.status(err.status).set(err.headers).json(err.body);
      return;
    }
    const type = (err as { type?: string }).type;
    const known = type ? BODY_ERRORS[type] : undefined;
    if (known) {
      const [status, error] = known;
      const message =
        status === 413
          ? `the body is larger than channels.maxBodyBytes (${config.channels.maxBodyBytes} bytes)`
          : type === 'json.too_deep'
            ? (err as Error).message
            : `the body is not valid JSON: ${(err as Error).message}`;
      const details =
        status === 413
          ? { limit: config.channels.maxBodyBytes }
          : type === 'json.too_deep'
            ? { limit: MAX_JSON_DEPTH }
            : {};
      res.status(status).json({ error, message, ...details });
      return;
    }
    if (type === 'request.aborted') return;
    // Any other client error (a path whose percent-encoding does not decode, ...): its 4xx, in JSON.
    const status = Number((err as { status?: unknown }).status);
    if (status >= 400 && status < 500) {
      const expose = (err as { expose?: boolean }).expose !== false;
      res.status(status).json({
        error: status === 400 ? 'bad_request' : 'client_error',
        message: expose ? (err as Error).message : 'bad request',
      });
      return;
    }
    logger.error({ err, method: req.method, route: req.route?.path }, 'request failed');
    res.status(500).json({ error: 'internal', message: 'internal server error' });
  });
  return app;
}

export function createSseServer(config: ServerConfig, deps: ServerDeps): SseServer {
  const { logger } = deps;
  let metricsRef: ServerMetrics | null = null;
  const broker = deps.broker ?? createBroker(config, () => metricsRef);
  const metrics = createServerMetrics(
    (route) => registry.countByRoute(route),
    () => broker.up,
  );
  metricsRef = metrics;
  const registry = new ConnectionRegistry(
    {
      maxConnections: config.limits.maxConnections,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      heartbeatMs: config.heartbeatMs,
      stallTimeoutMs: config.limits.stallTimeoutMs,
    },
    logger,
    metrics,
  );
  broker.onStateChange((up) => {
    if (up) logger.info({ event: 'broker_up', broker: broker.type }, 'broker connected');
    else logger.warn({ event: 'broker_down', broker: broker.type }, 'broker unreachable');
  });
  const hub = new Hub(
    broker,
    {
      retryMs: config.retryMs,
      channelIdleMs: Math.min(config.channels.historyTtlMs, 30_000),
      publishWaitMs: 5000,
    },
    metrics,
  );
  const cors = new Cors(config.cors.allowedOrigins, config.cors.allowCredentials);
  const streams = new StreamRouter({ config, registry, hub, metrics, cors, logger });
  const app = buildExpress(config, { hub, broker, registry, metrics, cors, logger });

  const http = createServer(boundedServerOptions(), (req, res) => {
    if (missingHost(req, res)) return;
    let handled: boolean;
    try {
      handled = streams.handle(req, res);
    } catch (err) {
      lastResort(err, req, res, logger);
      return;
    }
    if (!handled) app(req, res);
  });
  http.on('clientError', onClientError);
  http.on('connect', refuseConnect);
  http.on('checkExpectation', refuseExpectation);
  limitSockets(http, config.limits, logger);
  closeSilentSockets(http);

  let metricsHttp: Server | null = null;
  if (config.metrics.port > 0) {
    metricsHttp = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) app(req, res);
      else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"error":"not_found","message":"only /metrics is served on this port"}');
      }
    });
  }

  let stopping: Promise<void> | null = null;

  return {
    config,
    http,
    metricsHttp,
    registry,
    hub,
    broker,
    metrics,
    async listen() {
      await broker.start();
      if (!broker.up) {
        logger.warn({ event: 'broker_down', broker: broker.type }, 'broker unreachable at start');
      }
      await listenOn(http, config.port, config.host);
      if (metricsHttp) await listenOn(metricsHttp, config.metrics.port, config.host);
      return http.address() as AddressInfo;
    },
    shutdown() {
      stopping ??= shutdown();
      return stopping;
    },
  };

  async function shutdown(): Promise<void> {
    const deadline = Date.now() + config.shutdownTimeoutMs - 250;
    registry.draining = true;
    const closed = new Promise<void>((resolve) => {
      if (!http.listening) resolve();
      else http.close(() => resolve());
    });
    // Publishes now answer 503; those already accepted reach every open stream before it ends.
    await hub.drain(Date.now() + Math.min(2000, config.shutdownTimeoutMs / 2));
    const ended = registry.endAll(config.retryMs, config.shutdownRetryJitterMs);
    logger.info({ event: 'shutdown', streams: ended }, 'shutting down: streams ended');
    // Sockets become idle as their last response finishes; close them as they do.
    const sweeper = setInterval(() => http.closeIdleConnections(), 25);
    http.closeIdleConnections();
    const timedOut = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((r) => setTimeout(r, Math.max(0, deadline - Date.now()), true).unref()),
    ]);
    clearInterval(sweeper);
    if (timedOut) {
      registry.destroyAll();
      http.closeAllConnections();
      await closed;
    }
    hub.close();
    await broker.close();
    if (metricsHttp?.listening) {
      metricsHttp.closeAllConnections();
      await new Promise<void>((r) => metricsHttp!.close(() => r()));
    }
    logger.info({ event: 'stopped', forced: timedOut }, 'server stopped');
  }
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
