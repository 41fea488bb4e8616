// Graceful shutdown, in order: readiness false and new streams refused; publishes answer 503 while
// those already accepted reach every open stream; streams end with a randomized retry; sockets
// close as they go idle; whatever is still open at the deadline is destroyed; then the hub, the
// broker and the metrics port close.
import type { Server } from 'node:http';
import type { Broker } from './broker/broker.ts';
import type { ServerConfig } from './config.ts';
import { closeServer } from './http/http-servers.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { Logger } from './logger.ts';
import type { Hub } from './sse/hub.ts';
import type { OpenStreams } from './sse/open-streams.ts';

export interface ShutdownParts {
  config: ServerConfig;
  http: Server;
  metricsHttp: Server | null;
  lifecycle: Lifecycle;
  streams: OpenStreams;
  hub: Hub;
  broker: Broker;
  logger: Logger;
}

export async function gracefulShutdown(parts: ShutdownParts): Promise<void> {
  const { config, http, metricsHttp, lifecycle, streams, hub, broker, logger } = parts;
  const deadline = Date.now() + config.shutdownTimeoutMs - 250;
  // From now on readiness is 503, new streams and publishes are refused.
  lifecycle.draining = true;
  const closed = closeServer(http);
  // Publishes now answer 503; those already accepted reach every open stream before it ends.
  await hub.drain(Date.now() + Math.min(2000, config.shutdownTimeoutMs / 2));
  const ended = streams.endAll(config.retryMs, config.shutdownRetryJitterMs);
  logger.info({ event: 'shutdown', streams: ended }, 'shutting down: streams ended');
  const timedOut = await closeWhenIdle(http, closed, deadline);
  if (timedOut) {
    streams.destroyAll();
    http.closeAllConnections();
    await closed;
  }
  hub.close();
  await broker.close();
  if (metricsHttp?.listening) {
    metricsHttp.closeAllConnections();
    await closeServer(metricsHttp);
  }
  logger.info({ event: 'stopped', forced: timedOut }, 'server stopped');
}

/** Closes sockets as their last response finishes; true when `closed` did not settle by `deadline`. */
async function closeWhenIdle(http: Server, closed: Promise<void>, deadline: number) {
  const sweeper = setInterval(() => http.closeIdleConnections(), 25);
  http.closeIdleConnections();
  const timedOut = await Promise.race([
    closed.then(() => false),
    new Promise<boolean>((r) => setTimeout(r, Math.max(0, deadline - Date.now()), true).unref()),
  ]);
  clearInterval(sweeper);
  return timedOut;
}
