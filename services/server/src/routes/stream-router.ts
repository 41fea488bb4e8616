// The event-stream routes, served by the SSE core directly on node:http ahead of express (see
// docs/ARCHITECTURE.md: express's per-request routing cost more than half the throughput of short
// streams). Everything else goes on to express.
//   GET|HEAD /sse/test               the example stream
//   GET|HEAD /sse/channels/:channel  a channel subscription (retry, replay, live events)
//   GET|HEAD /sse/streams?channel=a&channel=b   several channels in one stream, one cursor
//   OPTIONS  on all of them           CORS preflight
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type AuthDecision, type Authorizer, refusalAnswer } from '../auth/access.ts';
import type { ServerConfig } from '../config.ts';
import type { ClientAddressOf } from '../http/client-address.ts';
import { type Cors, streamHeaders } from '../http/cors.ts';
import { badRequest, HttpError, sendJson } from '../http/errors.ts';
import { intParam, lastEventIdParam, rawLastEventId } from '../http/params.ts';
import type { Logger } from '../logger.ts';
import type { ServerMetrics } from '../metrics.ts';
import { Refusal } from '../refusals.ts';
import { channelName, checkChannelName } from '../sse/channel-name.ts';
import { SseConnection } from '../sse/connection.ts';
import type { Hub } from '../sse/hub.ts';
import type { OpenStreams } from '../sse/open-streams.ts';
import { respondWhole, wantsClose } from '../sse/transport.ts';
import type { StreamRoute } from '../stream-routes.ts';
import { channelHash, resumePositions } from '../wire/stream-cursor.ts';
import {
  EXAMPLE_DEFAULT_COUNT,
  EXAMPLE_DEFAULT_INTERVAL_MS,
  EXAMPLE_MAX_COUNT,
  EXAMPLE_MAX_INTERVAL_MS,
  startExample,
} from './example-stream.ts';
import { refusalOf } from './refusal-of.ts';
import { sendRefusal } from './stream-refusal.ts';

const CHANNEL_PREFIX = '/sse/channels/';
const STREAM_METHODS = 'GET, HEAD, OPTIONS';

export interface StreamRouterDeps {
  config: ServerConfig;
  /** Where unexpected errors of one stream are logged (once each). */
  logger?: Logger;
  streams: OpenStreams;
  hub: Hub;
  metrics: ServerMetrics;
  cors: Cors;
  /** The client's address (behind a trusted proxy: from X-Forwarded-For) for limits and logs. */
  addressOf: ClientAddressOf;
  /** Who may subscribe to a channel (tokens, public channels). */
  auth: () => Authorizer;
}

export class StreamRouter {
  private readonly deps: StreamRouterDeps;
  /** The stream headers when every origin is allowed: the same for every request (HTTP/1.1, 1.0). */
  private readonly fixedHeaders: readonly [OutgoingHttpHeaders, OutgoingHttpHeaders] | null;

  constructor(deps: StreamRouterDeps) {
    this.deps = deps;
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
    } else if (path === '/sse/streams') {
      route = '/sse/streams';
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
      if (route === '/sse/test') this.example(req, res, query);
      else if (route === '/sse/streams') this.subscribeMany(req, res, query);
      else this.subscribe(req, res, channel, query);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (err.status === 400) this.deps.metrics.connectionsRejected.labels('bad_request').inc();
      this.refuse(req, res, err);
    }
    return true;
  }

  private example(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const count = intParam(query, 'count', 1, EXAMPLE_MAX_COUNT, EXAMPLE_DEFAULT_COUNT);
    const interval = intParam(
      query,
      'interval_ms',
      0,
      EXAMPLE_MAX_INTERVAL_MS,
      EXAMPLE_DEFAULT_INTERVAL_MS,
    );
    const last = lastEventIdParam(req.headers['last-event-id'], query);
    const start = last === null ? 0 : last + 1;
    if (start >= count) {
      res.writeHead(204, this.deps.cors.responseHeaders(req.headers));
      res.end();
      return;
    }
    // Every example stream is a registered connection: it counts toward the limits.
    const conn = this.admitStream(req, res, '/sse/test');
    if (conn === null) return;
    const example = { start, count, intervalMs: interval };
    startExample(conn, this.headers(req), example, this.deps.metrics);
  }

  private subscribe(
    req: IncomingMessage,
    res: ServerResponse,
    rawName: string,
    query: URLSearchParams,
  ): void {
    const name = channelName(rawName);
    const authorizer = this.deps.auth();
    const decision = authorizer.authorize('subscribe', name, req);
    if (decision instanceof Promise) {
      decision.then(
        (d) => this.subscribeAs(req, res, name, query, d, authorizer.jwtEnabled),
        (err: unknown) => this.refuseStarted(req, res, err),
      );
    } else this.subscribeAs(req, res, name, query, decision, authorizer.jwtEnabled);
  }

  /** Subscribes once the token (if any) was checked: refused, or admitted with its expiry. */
  private subscribeAs(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    query: URLSearchParams,
    decision: AuthDecision,
    jwtEnabled: boolean,
  ): void {
    if (res.destroyed) return; // the client left while its token was checked
    if (decision.kind === 'refused') {
      this.deps.metrics.connectionsRejected.labels('unauthorized').inc();
      const answer = refusalAnswer(decision, 'subscribe', jwtEnabled);
      this.refuse(req, res, new HttpError(answer.status, answer.body, answer.headers));
      return;
    }
    // Any Last-Event-ID is taken: one the channel's record cannot place gets an explicit reset.
    const last = rawLastEventId(req.headers['last-event-id'], query)?.value.slice(0, 256) ?? null;
    const conn = this.admitStream(req, res, '/sse/channels/:channel');
    if (conn === null) return;
    // A stream granted by a signed token ends when the token expires (the stream watch).
    if (decision.kind === 'allowed' && decision.expiresAt !== null) {
      conn.expiresAt = decision.expiresAt;
    }
    this.deps.hub
      .subscribe(conn, name, last, this.headers(req))
      .catch((err: unknown) => this.refuseStarted(req, res, err));
  }

  /** GET /sse/streams?channel=a&channel=b...: the names (400 naming what is wrong), then auth. */
  private subscribeMany(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const names = [...new Set(query.getAll('channel'))];
    const max = this.deps.config.limits.maxChannelsPerStream;
    if (names.length === 0 || names.length > max) {
      throw badRequest(
        `a stream takes 1 to ${max} channel parameters (limits.maxChannelsPerStream)`,
        {
          parameter: 'channel',
          allowed: { min: 1, max },
        },
      );
    }
    for (const name of names) checkChannelName(name);
    const hashes = new Map(names.map((n) => [channelHash(n), n]));
    if (hashes.size !== names.length) {
      throw badRequest(
        'two of these channels cannot share one stream (their cursor keys collide)',
        {
          parameter: 'channel',
        },
      );
    }
    const authorizer = this.deps.auth();
    authorizer.authorizeAll('subscribe', names, req).then(
      (decision) => this.subscribeManyAs(req, res, names, query, decision, authorizer.jwtEnabled),
      (err: unknown) => this.refuseStarted(req, res, err),
    );
  }

  /** Opens the several-channel stream once the token (if any) was checked. */
  private subscribeManyAs(
    req: IncomingMessage,
    res: ServerResponse,
    names: string[],
    query: URLSearchParams,
    decision: AuthDecision,
    jwtEnabled: boolean,
  ): void {
    if (res.destroyed) return;
    if (decision.kind === 'refused') {
      this.deps.metrics.connectionsRejected.labels('unauthorized').inc();
      const answer = refusalAnswer(decision, 'subscribe', jwtEnabled);
      this.refuse(req, res, new HttpError(answer.status, answer.body, answer.headers));
      return;
    }
    const last = rawLastEventId(req.headers['last-event-id'], query)?.value ?? null;
    const { positions, malformed } = resumePositions(names, last);
    const conn = this.admitStream(req, res, '/sse/streams');
    if (conn === null) return;
    if (decision.kind === 'allowed' && decision.expiresAt !== null) {
      conn.expiresAt = decision.expiresAt;
    }
    this.deps.hub
      .subscribeMany(conn, names, positions, malformed ? last : null, this.headers(req))
      .catch((err: unknown) => this.refuseStarted(req, res, err));
  }

  /**
   * A stream that could not start (broker down, channel limit, shutdown): its refusal (an
   * EventSource gets the notice), or a cut when the stream had begun. Anything else is a bug:
   * logged once here, a 500 (or a cut) for this stream alone.
   */
  private refuseStarted(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let refusal: HttpError | null = refusalOf(err);
    if (refusal === null) {
      this.deps.logger?.error({ err, route: '/sse/channels/:channel' }, 'stream failed to open');
      refusal = new HttpError(500, { error: 'internal', message: 'internal server error' });
    }
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    this.refuse(req, res, refusal);
  }

  private refuse(req: IncomingMessage, res: ServerResponse, err: HttpError): void {
    sendRefusal(req, res, err, this.deps.cors.responseHeaders(req.headers));
  }

  private headers(req: IncomingMessage): OutgoingHttpHeaders {
    const http10 = req.httpVersionMinor === 0;
    if (this.fixedHeaders !== null) return this.fixedHeaders[http10 ? 1 : 0];
    return streamHeaders(this.deps.cors.responseHeaders(req.headers), http10);
  }

  /**
   * Applies the connection limits and registers the stream, or answers (the refusal; HEAD: the
   * headers only) and returns null.
   */
  private admitStream(
    req: IncomingMessage,
    res: ServerResponse,
    route: StreamRoute,
  ): SseConnection | null {
    const { streams, metrics, config, addressOf } = this.deps;
    const ip = addressOf(req);
    const refused = streams.admit(ip);
    if (refused !== null) {
      if (refused !== 'shutting_down') metrics.connectionsRejected.labels(refused).inc();
      this.refuse(req, res, new Refusal(refused));
      return null;
    }
    if (req.method === 'HEAD') {
      respondWhole(res, this.headers(req), null, wantsClose(req));
      return null;
    }
    const conn = new SseConnection(req, res, route, config.limits.maxBufferedBytes, ip);
    streams.add(conn);
    return conn;
  }
}
