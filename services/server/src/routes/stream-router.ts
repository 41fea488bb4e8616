// The event-stream routes, served by the SSE core directly on node:http ahead of express (see
// docs/ARCHITECTURE.md: express's per-request routing cost more than half the throughput of short
// streams). Everything else goes on to express.
//   GET|HEAD /sse/test               the example's demo stream
//   GET|HEAD /sse/channels/:channel  a channel subscription (retry, replay, live events)
//   OPTIONS  on both                  CORS preflight
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ServerConfig } from '../config.ts';
import { bearerToken, TokenCheck, UNAUTHORIZED_HEADERS } from '../http/auth.ts';
import { type ClientAddressOf, clientAddressOf } from '../http/client-address.ts';
import { type Cors, streamHeaders } from '../http/cors.ts';
import { HttpError, sendError, sendJson } from '../http/errors.ts';
import { intParam, lastEventIdParam, rawLastEventId } from '../http/params.ts';
import type { Logger } from '../logger.ts';
import type { ServerMetrics } from '../metrics.ts';
import { channelName } from '../sse/channel-name.ts';
import { SseConnection, type StreamRoute, wantsClose } from '../sse/connection.ts';
import type { Hub } from '../sse/hub.ts';
import type { ConnectionRegistry } from '../sse/registry.ts';
import {
  DEMO_DEFAULT_COUNT,
  DEMO_DEFAULT_INTERVAL_MS,
  DEMO_MAX_COUNT,
  DEMO_MAX_INTERVAL_MS,
  startDemo,
} from './demo-stream.ts';
import {
  acceptsEventStream,
  noticeFromError,
  REFUSAL_MESSAGES,
  refusalNotice,
  sendRefusalEvent,
  withHeaders,
} from './stream-refusal.ts';
import { unavailable } from './unavailable.ts';

const CHANNEL_PREFIX = '/sse/channels/';
const STREAM_METHODS = 'GET, HEAD, OPTIONS';

export interface StreamRouterDeps {
  config: ServerConfig;
  /** Where unexpected errors of one stream are logged (once each). */
  logger?: Logger;
  registry: ConnectionRegistry;
  hub: Hub;
  metrics: ServerMetrics;
  cors: Cors;
}

export class StreamRouter {
  private readonly deps: StreamRouterDeps;
  private readonly subscribeToken: TokenCheck | null;
  /** The client's address (behind a trusted proxy: from X-Forwarded-For) for limits and logs. */
  private readonly addressOf: ClientAddressOf;
  /** The stream headers when every origin is allowed: the same for every request (HTTP/1.1, 1.0). */
  private readonly fixedHeaders: readonly [OutgoingHttpHeaders, OutgoingHttpHeaders] | null;

  constructor(deps: StreamRouterDeps) {
    this.deps = deps;
    const token = deps.config.subscribe.token;
    this.subscribeToken = token ? new TokenCheck(token) : null;
    this.addressOf = clientAddressOf(deps.config.trustProxy);
    const anyOrigin = deps.config.cors.allowedOrigins.includes('*');
    this.fixedHeaders = anyOrigin
      ? [
          streamHeaders(deps.cors.responseHeaders({}), false),
          streamHeaders(deps.cors.responseHeaders({}), true),
        ]
      : null;
  }

  /** Serves the request when it is for an event-stream route; false leaves it to express. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '/';
    if (!url.startsWith('/sse/')) return false;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let route: StreamRoute;
    let channel = '';
    if (path === '/sse/test') {
      route = '/sse/test';
    } else if (path.startsWith(CHANNEL_PREFIX)) {
      route = '/sse/channels/:channel';
      channel = path.slice(CHANNEL_PREFIX.length);
    } else {
      sendJson(
        res,
        404,
        { error: 'not_found', message: `no route for ${req.method} ${path}` },
        this.deps.cors.responseHeaders(req.headers),
      );
      return true;
    }
    const method = req.method;
    if (method === 'OPTIONS') {
      res.writeHead(204, this.deps.cors.preflightHeaders(req.headers, STREAM_METHODS));
      res.end();
      return true;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      sendJson(
        res,
        405,
        { error: 'method_not_allowed', message: `${method} is not allowed on ${route}` },
        { ...this.deps.cors.responseHeaders(req.headers), Allow: STREAM_METHODS },
      );
      return true;
    }
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    try {
      if (route === '/sse/test') this.demo(req, res, query);
      else this.subscribe(req, res, channel, query);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (err.status === 400) this.deps.metrics.connectionsRejected.labels('bad_request').inc();
      sendError(res, withHeaders(err, this.deps.cors.responseHeaders(req.headers)));
    }
    return true;
  }

  private demo(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const count = intParam(query, 'count', 1, DEMO_MAX_COUNT, DEMO_DEFAULT_COUNT);
    const interval = intParam(
      query,
      'interval_ms',
      0,
      DEMO_MAX_INTERVAL_MS,
      DEMO_DEFAULT_INTERVAL_MS,
    );
    const last = lastEventIdParam(req.headers['last-event-id'], query);
    const start = last === null ? 0 : last + 1;
    if (start >= count) {
      this.noContent(req, res);
      return;
    }
    // Every demo stream is a registered connection: it counts toward the limits.
    const conn = this.open(req, res, '/sse/test');
    if (conn === null) return;
    startDemo(conn, this.headers(req), { start, count, intervalMs: interval }, this.deps.metrics);
  }

  private subscribe(
    req: IncomingMessage,
    res: ServerResponse,
    rawName: string,
    query: URLSearchParams,
  ): void {
    const name = channelName(rawName);
    if (this.subscribeToken !== null) {
      const presented = bearerToken(req.headers) ?? query.get('access_token');
      if (!this.subscribeToken.matches(presented)) {
        this.deps.metrics.connectionsRejected.labels('unauthorized').inc();
        sendJson(
          res,
          401,
          { error: 'unauthorized', message: 'a valid subscribe token is required' },
          { ...UNAUTHORIZED_HEADERS, ...this.deps.cors.responseHeaders(req.headers) },
        );
        return;
      }
    }
    // Any Last-Event-ID is taken: one the channel's record cannot place gets an explicit reset.
    const last = rawLastEventId(req.headers['last-event-id'], query)?.value.slice(0, 256) ?? null;
    const conn = this.open(req, res, '/sse/channels/:channel');
    if (conn === null) return;
    let opening: void | Promise<void>;
    try {
      opening = this.deps.hub.subscribe(conn, name, last, this.headers(req));
    } catch (err) {
      this.refuseOpened(req, res, err);
      return;
    }
    opening?.catch((err: unknown) => this.refuseOpened(req, res, err));
  }

  /**
   * A stream that could not start (broker down, channel limit, shutdown): 503 JSON (an EventSource
   * gets the 200 notice with a retry instead), or a cut when the stream had begun.
   */
  private refuseOpened(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let answer = unavailable(err);
    if (answer === null) {
      // Unexpected: logged once here, a 500 (or a cut) for this stream alone.
      this.deps.logger?.error({ err, route: '/sse/channels/:channel' }, 'stream failed to open');
      answer = new HttpError(500, { error: 'internal', message: 'internal server error' });
    }
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const cors = this.deps.cors.responseHeaders(req.headers);
    const notice = acceptsEventStream(req) ? noticeFromError(answer) : null;
    if (notice !== null) sendRefusalEvent(res, notice, cors);
    else sendError(res, withHeaders(answer, cors));
  }

  private headers(req: IncomingMessage): OutgoingHttpHeaders {
    const http10 = req.httpVersionMinor === 0;
    if (this.fixedHeaders !== null) return this.fixedHeaders[http10 ? 1 : 0];
    return streamHeaders(this.deps.cors.responseHeaders(req.headers), http10);
  }

  private headOnly(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, this.headers(req));
    if (wantsClose(req)) res.end(() => req.socket.end());
    else res.end();
  }

  private noContent(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(204, this.deps.cors.responseHeaders(req.headers));
    res.end();
  }

  /** Applies the connection limits; answers 503/429 and returns false when the stream may not open. */
  private admit(req: IncomingMessage, res: ServerResponse, ip: string): boolean {
    const { registry, metrics, cors } = this.deps;
    const refusal = registry.admit(ip);
    if (refusal === null) return true;
    const corsHeaders = cors.responseHeaders(req.headers);
    if (refusal !== 'shutting_down') metrics.connectionsRejected.labels(refusal).inc();
    const retryAfter = refusal === 'shutting_down' ? 1 : 5;
    if (req.method === 'GET' && acceptsEventStream(req)) {
      // An EventSource treats any non-200 as fatal and ignores Retry-After: a 200 that says
      // "come back in a while" and ends keeps it reconnecting on its own (docs/BROWSERS.md).
      sendRefusalEvent(res, refusalNotice(refusal, retryAfter), corsHeaders);
      return false;
    }
    const [status, error] =
      refusal === 'per_ip_limit' ? [429, 'too_many_connections'] : [503, 'unavailable'];
    sendJson(
      res,
      status,
      { error, message: REFUSAL_MESSAGES[refusal] },
      { ...corsHeaders, 'Retry-After': String(retryAfter) },
    );
    return false;
  }

  /** Admits and registers a stream, or answers and returns null. HEAD gets headers only. */
  private open(
    req: IncomingMessage,
    res: ServerResponse,
    route: StreamRoute,
  ): SseConnection | null {
    const ip = this.addressOf(req);
    if (!this.admit(req, res, ip)) return null;
    if (req.method === 'HEAD') {
      this.headOnly(req, res);
      return null;
    }
    const conn = new SseConnection(req, res, route, this.deps.config.limits.maxBufferedBytes, ip);
    this.deps.registry.add(conn);
    return conn;
  }
}
