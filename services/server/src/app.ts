// Builds the server: the SSE core (broker, hub, open streams, metrics, channel directory), the
// node:http server with the stream routes in front and express behind it (health, metrics,
// publish, the channel API, the console page, errors), and the graceful shutdown (shutdown.ts).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Authorizer } from './auth/access.ts';
import type { Broker } from './broker/broker.ts';
import { createBroker, PUBLISH_WAIT_MS } from './broker/create-broker.ts';
import { createChannelDirectory } from './channels/create-directory.ts';
import type { ChannelDirectory } from './channels/directory.ts';
import type { ServerConfig } from './config.ts';
import { type ClientAddressOf, clientAddressOf } from './http/client-address.ts';
import { Cors } from './http/cors.ts';
import { errorHandler, notFound } from './http/error-handler.ts';
import { createMainServer, createMetricsServer, listenOn } from './http/http-servers.ts';
import { timeRequests } from './http/request-timing.ts';
import { Lifecycle } from './lifecycle.ts';
import type { Logger } from './logger.ts';
import { createServerMetrics, registerChannelsGauge, type ServerMetrics } from './metrics.ts';
import { channelsApiRouter } from './routes/channels-api.ts';
import { healthRouter } from './routes/health.ts';
import { publishRouter } from './routes/publish.ts';
import { StreamRouter } from './routes/stream-router.ts';
import { viewerRouter } from './routes/viewer.ts';
import { gracefulShutdown } from './shutdown.ts';
import { Hub } from './sse/hub.ts';
import { OpenStreams } from './sse/open-streams.ts';

export interface SseServer {
  readonly config: ServerConfig;
  readonly http: Server;
  readonly metricsHttp: Server | null;
  readonly lifecycle: Lifecycle;
  readonly streams: OpenStreams;
  readonly hub: Hub;
  readonly broker: Broker;
  readonly metrics: ServerMetrics;
  /** What GET /channels reads: the channels that exist and their facts. */
  readonly channels: ChannelDirectory;
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

interface Core {
  broker: Broker;
  metrics: ServerMetrics;
  lifecycle: Lifecycle;
  streams: OpenStreams;
  hub: Hub;
  channels: ChannelDirectory;
}

/** Broker, metrics, the draining state, open streams and hub, wired to each other. */
function createCore(config: ServerConfig, deps: ServerDeps): Core {
  const { logger } = deps;
  // The metrics read the open streams and the broker only when scraped, after both exist.
  const metrics = createServerMetrics(
    (route) => streams.countByRoute(route),
    () => broker.up,
  );
  const broker = deps.broker ?? createBroker(config, metrics, logger);
  const lifecycle = new Lifecycle();
  const streams = new OpenStreams(
    {
      maxConnections: config.limits.maxConnections,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      maxNewStreamsPerSecond: config.limits.maxNewStreamsPerSecond,
      heartbeatMs: config.heartbeatMs,
      retryMs: config.retryMs,
      stallTimeoutMs: config.limits.stallTimeoutMs,
    },
    logger,
    metrics,
    lifecycle,
  );
  broker.onStateChange((up) => {
    if (up) logger.info({ event: 'broker_up', broker: broker.type }, 'broker connected');
    else logger.warn({ event: 'broker_down', broker: broker.type }, 'broker unreachable');
  });
  broker.onChannelFault((channel, fault) => {
    if (fault !== null) {
      logger.warn({ event: 'channel_unavailable', channel, fault }, 'channel cannot be served');
    } else logger.info({ event: 'channel_available', channel }, 'channel served again');
  });
  const hub = new Hub(
    broker,
    { retryMs: config.retryMs, publishWaitMs: PUBLISH_WAIT_MS },
    metrics,
    lifecycle,
  );
  const channels = createChannelDirectory(config, broker, hub);
  registerChannelsGauge(metrics.registry, () => channels.count());
  return { broker, metrics, lifecycle, streams, hub, channels };
}

/** Everything that is not a stream: health, metrics, publish, channels, the console, 404, errors. */
function buildExpress(
  config: ServerConfig,
  core: Core,
  cors: Cors,
  addressOf: ClientAddressOf,
  auth: () => Authorizer,
  logger: Logger,
) {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(timeRequests(core.metrics.httpRequestDuration));
  app.use(healthRouter(core));
  app.use(publishRouter(config, core.hub, cors, addressOf, auth));
  app.use(channelsApiRouter(config, core.channels, addressOf, auth));
  app.use(viewerRouter());
  app.use(notFound);
  app.use(errorHandler(config, logger));
  return app;
}

export function createSseServer(config: ServerConfig, deps: ServerDeps): SseServer {
  const { logger } = deps;
  const core = createCore(config, deps);
  const { broker } = core;
  const cors = new Cors(config.cors.allowedOrigins, config.cors.allowCredentials);
  // Behind a trusted proxy on this host the socket is loopback for every client: ask who is behind.
  const addressOf = clientAddressOf(config.trustProxy);
  // Who may subscribe and publish: made in listen() (signed-token keys are read and imported
  // first), before any request can arrive.
  let authorizer: Authorizer | null = null;
  const auth = (): Authorizer => {
    if (authorizer === null) throw new Error('the server is not listening yet');
    return authorizer;
  };
  const router = new StreamRouter({ config, ...core, cors, addressOf, auth, logger });
  const app = buildExpress(config, core, cors, addressOf, auth, logger);
  const http = createMainServer(config, router, app, logger);
  const metricsHttp = config.metrics.port > 0 ? createMetricsServer(app) : null;
  let stopping: Promise<void> | null = null;

  return {
    config,
    http,
    metricsHttp,
    ...core,
    async listen() {
      authorizer ??= await Authorizer.create(config, { metrics: core.metrics, logger });
      await broker.start();
      await core.channels.start();
      if (!broker.up) {
        logger.warn({ event: 'broker_down', broker: broker.type }, 'broker unreachable at start');
      }
      await listenOn(http, config.port, config.host);
      if (metricsHttp) await listenOn(metricsHttp, config.metrics.port, config.host);
      return http.address() as AddressInfo;
    },
    shutdown() {
      // The channel directory last: it removes this replica's presence (Redis) once streams ended.
      stopping ??= gracefulShutdown({ config, http, metricsHttp, ...core, logger }).finally(() => {
        authorizer?.close();
        return core.channels.close();
      });
      return stopping;
    },
  };
}
