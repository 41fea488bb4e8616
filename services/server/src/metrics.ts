// The server's Prometheus metrics (prom-client), one Registry per server instance.
// Hot-path counting is batched: one inc(n) per fan-out on pre-bound label children.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { packageVersion } from '../../shared/cli.ts';
import { registerDefaultMetrics } from '../../shared/default-metrics.ts';
import { REJECT_REASONS } from './refusals.ts';
import {
  CLOSE_REASONS,
  type CloseReason,
  STREAM_ROUTES,
  type StreamRoute,
} from './stream-routes.ts';

export const BROKER_OPS = ['publish', 'replay', 'join', 'read'] as const;
export type BrokerOp = (typeof BROKER_OPS)[number];

/** Why a token check refused a request (auth/access.ts): the reason label's only values. */
export const AUTH_FAILURE_REASONS = [
  'missing',
  'malformed',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'wrong_issuer',
  'wrong_audience',
  'unknown_kid',
  'insufficient_scope',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** Stream lifecycle: open, opened, refused, how long they stayed, events delivered per route. */
interface StreamMetrics {
  connectionsActive: Gauge<'route'>;
  connectionsTotal: Counter<'route'>;
  connectionsRejected: Counter<'reason'>;
  eventsSent: Record<StreamRoute, Counter.Internal>;
  /** Pre-bound children of connectionsTotal and connectionDuration, one per route. */
  opened: Record<StreamRoute, Counter.Internal>;
  durations: Record<StreamRoute, Histogram.Internal<'route'>>;
  connectionDuration: Histogram<'route'>;
  /** Pre-bound children of sse_stream_ends_total, one per reason. */
  streamEnds: Record<CloseReason, Counter.Internal>;
}

/** The write path: publishes accepted, fan-out time, bytes, replays, heartbeats, slow consumers. */
interface DeliveryMetrics {
  eventsPublished: Counter;
  bytesSent: Counter;
  fanoutDuration: Histogram;
  slowConsumerDisconnects: Counter;
  replayedEvents: Counter;
  heartbeatsSent: Counter;
  /** How long one fan-out tick took (a slice of the sweep: at most 1000 writes). */
  tickDuration: Histogram;
}

interface BrokerMetrics {
  brokerErrors: Counter<'op'>;
  brokerPublishDuration: Histogram;
  /** Redis master switches seen (Sentinel promoted a replica; a Cluster replica took over slots). */
  brokerFailovers: Counter;
}

/** Token checks that refused a request (401 or 403), by reason. */
interface AuthMetrics {
  authFailures: Counter<'reason'>;
}

export interface ServerMetrics extends StreamMetrics, DeliveryMetrics, BrokerMetrics, AuthMetrics {
  registry: Registry;
  httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>;
}

type Registers = Registry[];

/** One pre-bound label child per stream route, so the hot path never looks labels up. */
function perRoute<T>(bind: (route: StreamRoute) => T): Record<StreamRoute, T> {
  return {
    '/sse/test': bind('/sse/test'),
    '/sse/channels/:channel': bind('/sse/channels/:channel'),
    '/sse/streams': bind('/sse/streams'),
  };
}

function buildInfo(registers: Registers): void {
  new Gauge({
    name: 'http_sse_build_info',
    help: 'Always 1; the labels say which build runs: package.json version and Node.js version.',
    labelNames: ['version', 'node_version'],
    registers,
  }).set({ version: packageVersion(), node_version: process.version }, 1);
}

function streamMetrics(
  registers: Registers,
  activeCount: (route: StreamRoute) => number,
): StreamMetrics {
  const connectionsActive = new Gauge({
    name: 'sse_connections_active',
    help: 'Event streams open now, by route pattern.',
    labelNames: ['route'],
    registers,
    collect() {
      for (const route of STREAM_ROUTES) this.set({ route }, activeCount(route));
    },
  });
  const connectionsTotal = new Counter({
    name: 'sse_connections_total',
    help: 'Event streams opened, by route pattern.',
    labelNames: ['route'],
    registers,
  });
  const connectionsRejected = new Counter({
    name: 'sse_connections_rejected_total',
    help: 'Stream requests refused before streaming, by reason.',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of REJECT_REASONS) connectionsRejected.labels({ reason }).inc(0);
  const eventsSentCounter = new Counter({
    name: 'sse_events_sent_total',
    help: 'Events written to subscribers (deliveries), by route pattern.',
    labelNames: ['route'],
    registers,
  });
  const connectionDuration = new Histogram({
    name: 'sse_connection_duration_seconds',
    help: 'How long event streams stayed open, by route pattern.',
    labelNames: ['route'],
    buckets: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400],
    registers,
  });
  const opened = perRoute((route) => connectionsTotal.labels({ route }));
  const eventsSent = perRoute((route) => eventsSentCounter.labels({ route }));
  for (const route of STREAM_ROUTES) {
    opened[route].inc(0);
    eventsSent[route].inc(0);
  }
  const durations = perRoute((route) => connectionDuration.labels({ route }));
  const ends = new Counter({
    name: 'sse_stream_ends_total',
    help: 'Event streams that ended, by why: complete, client (went away), slow_consumer, shutdown, token_expired (event: reauth), error.',
    labelNames: ['reason'],
    registers,
  });
  const streamEnds = Object.fromEntries(
    CLOSE_REASONS.map((reason) => {
      const child = ends.labels({ reason });
      child.inc(0);
      return [reason, child];
    }),
  ) as Record<CloseReason, Counter.Internal>;
  return {
    streamEnds,
    connectionsActive,
    connectionsTotal,
    connectionsRejected,
    eventsSent,
    opened,
    durations,
    connectionDuration,
  };
}

function deliveryMetrics(registers: Registers): DeliveryMetrics {
  return {
    eventsPublished: new Counter({
      name: 'sse_events_published_total',
      help: 'Events accepted by the publish API.',
      registers,
    }),
    bytesSent: new Counter({
      name: 'sse_bytes_sent_total',
      help: 'SSE bytes written to streams (events, comments and retry lines; HTTP framing excluded).',
      registers,
    }),
    fanoutDuration: new Histogram({
      name: 'sse_fanout_duration_seconds',
      help: 'Time from accepting a publish to the write to its last local subscriber.',
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
      ],
      registers,
    }),
    slowConsumerDisconnects: new Counter({
      name: 'sse_slow_consumer_disconnects_total',
      help: 'Subscribers cut off as slow consumers: unsent bytes over limits.maxBufferedBytes, or no progress for limits.stallTimeoutMs.',
      registers,
    }),
    replayedEvents: new Counter({
      name: 'sse_replayed_events_total',
      help: 'Events sent from channel history to subscribers resuming with Last-Event-ID.',
      registers,
    }),
    heartbeatsSent: new Counter({
      name: 'sse_heartbeats_sent_total',
      help: 'Heartbeat comments written to idle streams.',
      registers,
    }),
    tickDuration: new Histogram({
      name: 'sse_fanout_tick_duration_seconds',
      help: 'Time one fan-out tick took: the next slice of the sweep (at most 1000 live subscribers, one write each, carrying every event each lacks), and the several-channel streams.',
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
      ],
      registers,
    }),
  };
}

function brokerMetrics(registers: Registers, brokerUp: () => boolean): BrokerMetrics {
  new Gauge({
    name: 'sse_broker_up',
    help: 'Whether the broker (memory, or Redis) can publish and replay now: 1 or 0.',
    registers,
    collect() {
      this.set(brokerUp() ? 1 : 0);
    },
  });
  const brokerErrors = new Counter({
    name: 'sse_broker_errors_total',
    help: 'Failed broker operations, by operation (publish, replay, join, read).',
    labelNames: ['op'],
    registers,
  });
  for (const op of BROKER_OPS) brokerErrors.labels({ op }).inc(0);
  const brokerPublishDuration = new Histogram({
    name: 'sse_broker_publish_duration_seconds',
    help: 'Time for the broker to assign ids and store published events in the channel record.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers,
  });
  const brokerFailovers = new Counter({
    name: 'sse_broker_failovers_total',
    help: 'Redis master switches seen by this replica (Sentinel failover, Cluster replica promoted).',
    registers,
  });
  return { brokerErrors, brokerPublishDuration, brokerFailovers };
}

function authMetrics(registers: Registers): AuthMetrics {
  const authFailures = new Counter({
    name: 'sse_auth_failures_total',
    help: 'Requests refused by the token check (401 no or bad token, 403 insufficient scope), by reason.',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of AUTH_FAILURE_REASONS) authFailures.labels({ reason }).inc(0);
  return { authFailures };
}

/**
 * Creates the registry and every metric; `activeCount` reports open streams per route, `brokerUp`
 * whether the broker is reachable.
 */
export function createServerMetrics(
  activeCount: (route: StreamRoute) => number,
  brokerUp: () => boolean = () => true,
): ServerMetrics {
  const registry = new Registry();
  registerDefaultMetrics(registry);
  const registers = [registry];
  buildInfo(registers);
  return {
    registry,
    ...streamMetrics(registers, activeCount),
    ...deliveryMetrics(registers),
    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Duration of non-streaming HTTP requests (publish, health, metrics), by route pattern.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    ...brokerMetrics(registers, brokerUp),
    ...authMetrics(registers),
  };
}

/** Longest a scrape waits for the channel count (a hung Redis must not hold /metrics up). */
const CHANNEL_COUNT_WAIT_MS = 500;

/**
 * sse_channels: channels that exist now (subscribers or history; with the Redis broker, across every
 * replica). Read from `count` at each scrape; a read that fails or takes longer than 500 ms keeps
 * the last value.
 */
export function registerChannelsGauge(registry: Registry, count: () => Promise<number>): Gauge {
  return new Gauge({
    name: 'sse_channels',
    help: 'Channels with subscribers or history (Redis broker: across every replica, the same number on each).',
    registers: [registry],
    async collect() {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((r) => {
        timer = setTimeout(r, CHANNEL_COUNT_WAIT_MS, null);
      });
      try {
        const n = await Promise.race([count(), late]);
        if (n !== null) this.set(n);
      } catch {
        // The broker is unreachable: sse_broker_up says so; keep the last value.
      } finally {
        clearTimeout(timer);
      }
    },
  });
}
