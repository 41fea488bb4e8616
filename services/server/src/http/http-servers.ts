// The node:http servers: the main one (the SSE core's stream routes first, express for the rest,
// with the socket bounds and request guards of socket-limits.ts and request-guards.ts) and the
// optional metrics-only one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ServerConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { lastResort, missingHost, refuseConnect, refuseExpectation } from './request-guards.ts';
import {
  boundedServerOptions,
  closeSilentSockets,
  limitSockets,
  onClientError,
  reportAcceptQueue,
} from './socket-limits.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The stream routes; false when the request is not theirs. */
export interface StreamRoutes {
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

export function createMainServer(
  config: ServerConfig,
  streams: StreamRoutes,
  app: Handler,
  logger: Logger,
): Server {
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
  reportAcceptQueue(config.limits.maxConnections, logger);
  closeSilentSockets(http);
  return http;
}

/** Serves only /metrics (through `app`), 404 JSON for anything else. */
export function createMetricsServer(app: Handler): Server {
  return createServer((req, res) => {
    if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) app(req, res);
    else {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"error":"not_found","message":"only /metrics is served on this port"}');
    }
  });
}

/**
 * The accept queue asked of the kernel, which caps it at net.core.somaxconn (4096 on current
 * Linux). Node's default, 511, overflows when thousands of clients reconnect at once (a storm
 * after a restart): the kernel drops their handshakes and they retry SYNs after 1, 3, 7, 15, 31,
 * 63 s, so a 10,000-client storm took two minutes and reset some connections.
 */
const LISTEN_BACKLOG = 65535;

export function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}
