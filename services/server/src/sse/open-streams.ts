// Every open stream of the server: admission (limits.maxConnections, per address, draining),
// close bookkeeping (counts, duration, slow-consumer log), and the end of all streams at
// shutdown. The heartbeat and stall timer is the StreamWatch over the same set.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Lifecycle } from '../lifecycle.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { RefusalReason } from '../refusals.ts';
import type { StreamRoute } from '../stream-routes.ts';
import { encodeRetry } from '../wire/encode.ts';
import type { SseConnection } from './connection.ts';
import { NewStreamRate } from './new-stream-rate.ts';
import { StreamWatch, type WatchOptions } from './stream-watch.ts';

export interface OpenStreamsOptions extends WatchOptions {
  maxConnections: number;
  /** 0: no per-address limit. */
  maxConnectionsPerIp: number;
  /** 0: no limit on the rate of new streams. */
  maxNewStreamsPerSecond: number;
}

const kConnection = Symbol('sse.connection');
const kStreams = Symbol('sse.streams');
type TaggedResponse = ServerResponse & {
  [kConnection]?: SseConnection;
  [kStreams]?: OpenStreams;
};

/** Why admit() refuses a new stream: capacity (in all, per address), its rate, or shutdown. */
export type AdmissionRefusal = Extract<
  RefusalReason,
  'max_connections' | 'per_ip_limit' | 'new_stream_rate' | 'shutting_down'
>;

export class OpenStreams {
  private readonly streams = new Set<SseConnection>();
  private readonly perIp = new Map<string, number>();
  private readonly perRoute: Record<StreamRoute, number> = {
    '/sse/test': 0,
    '/sse/channels/:channel': 0,
    '/sse/streams': 0,
  };
  private readonly options: OpenStreamsOptions;
  private readonly metrics: ServerMetrics;
  private readonly logger: Logger;
  private readonly lifecycle: Lifecycle;
  private readonly watch: StreamWatch;
  private readonly rate: NewStreamRate;

  constructor(
    options: OpenStreamsOptions,
    logger: Logger,
    metrics: ServerMetrics,
    lifecycle: Lifecycle,
  ) {
    this.options = options;
    this.logger = logger;
    this.metrics = metrics;
    this.lifecycle = lifecycle;
    this.watch = new StreamWatch(this.streams, options, metrics, logger);
    this.rate = new NewStreamRate(options.maxNewStreamsPerSecond);
  }

  countByRoute(route: StreamRoute): number {
    return this.perRoute[route];
  }

  /** Why a new stream from `ip` must be refused, or null when it may open. */
  admit(ip: string): AdmissionRefusal | null {
    if (this.lifecycle.draining) return 'shutting_down';
    if (this.streams.size >= this.options.maxConnections) return 'max_connections';
    const limit = this.options.maxConnectionsPerIp;
    if (limit > 0 && (this.perIp.get(ip) ?? 0) >= limit) return 'per_ip_limit';
    if (!this.rate.take()) return 'new_stream_rate';
    return null;
  }

  /** Starts tracking an admitted stream; it is forgotten when its response closes. */
  add(conn: SseConnection): void {
    this.streams.add(conn);
    this.perIp.set(conn.ip, (this.perIp.get(conn.ip) ?? 0) + 1);
    this.perRoute[conn.route]++;
    const res = conn.res as TaggedResponse;
    res[kConnection] = conn;
    res[kStreams] = this;
    conn.res.once('close', onResponseClose);
    this.metrics.opened[conn.route].inc();
    this.watch.streamOpened();
  }

  /** Called once when a stream's response has closed. */
  remove(conn: SseConnection): void {
    if (!this.streams.delete(conn)) return;
    const n = (this.perIp.get(conn.ip) ?? 1) - 1;
    if (n === 0) this.perIp.delete(conn.ip);
    else this.perIp.set(conn.ip, n);
    this.perRoute[conn.route]--;
    conn.closed();
    const metrics = this.metrics;
    metrics.durations[conn.route].observe((performance.now() - conn.openedAt) / 1000);
    metrics.streamEnds[conn.closeReason].inc();
    if (conn.closeReason === 'slow_consumer') {
      metrics.slowConsumerDisconnects.inc();
      this.logger.warn(
        { event: 'slow_consumer', route: conn.route, ip: conn.ip },
        'subscriber exceeded limits.maxBufferedBytes or stopped reading and was disconnected',
      );
    }
    if (this.streams.size === 0) this.watch.stop();
  }

  /**
   * Ends every open stream cleanly after a `retry:` line whose delay is spread over
   * [retryMs, retryMs + jitterMs], so clients do not all come back in the same millisecond.
   */
  endAll(retryMs: number, jitterMs: number): number {
    let ended = 0;
    for (const conn of this.streams) {
      if (conn.ended) continue;
      if (!conn.opened) {
        // Still joining (waiting for the broker's replay): nothing was sent, nothing to end.
        conn.destroy('shutdown');
        continue;
      }
      const retry = Buffer.from(encodeRetry(retryMs + Math.random() * jitterMs));
      conn.end(retry, 'shutdown');
      this.metrics.bytesSent.inc(retry.length);
      ended++;
    }
    this.watch.stop();
    return ended;
  }

  /** Drops whatever is still open (after the shutdown deadline). */
  destroyAll(): void {
    for (const conn of this.streams) conn.destroy('shutdown');
  }
}

function onResponseClose(this: TaggedResponse): void {
  const conn = this[kConnection];
  if (conn) this[kStreams]?.remove(conn);
}
