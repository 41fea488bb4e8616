// The client's own Prometheus metrics (its own prom-client Registry, with the default process
// metrics) and a tiny node:http server for GET /metrics.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerDefaultMetrics } from '../../shared/default-metrics.ts';
import { CONNECTION_ERROR_REASONS, type SseErrorReason } from './errors.ts';

export interface ClientMetrics {
  registry: Registry;
  eventReceived(): void;
  reconnecting(): void;
  connectionError(reason: SseErrorReason): void;
  setConnected(open: boolean): void;
  /** Observes the publish-to-receive lag if `data` is JSON carrying a numeric `ts`. */
  observeLag(data: string, nowMs?: number): void;
}

/** Publish time of an event: `ts` in ms since the Unix epoch, or undefined. */
export function publishTimestamp(data: string): number | undefined {
  // Cheap pre-checks keep JSON.parse off events that cannot carry a timestamp.
  if (data.charCodeAt(0) !== 123 /* { */ || !data.includes('"ts"')) return undefined;
  try {
    const parsed = JSON.parse(data) as { ts?: unknown };
    const ts = parsed?.ts;
    return typeof ts === 'number' && Number.isFinite(ts) && ts > 0 ? ts : undefined;
  } catch {
    return undefined;
  }
}

export function createClientMetrics(): ClientMetrics {
  const registry = new Registry();
  registerDefaultMetrics(registry);
  const events = new Counter({
    name: 'sse_client_events_received_total',
    help: 'Server-sent events dispatched by the client.',
    registers: [registry],
  });
  const reconnects = new Counter({
    name: 'sse_client_reconnects_total',
    help: 'Reconnection attempts scheduled after a stream ended or failed.',
    registers: [registry],
  });
  const errors = new Counter({
    name: 'sse_client_connection_errors_total',
    help: 'Failed or broken connections, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of CONNECTION_ERROR_REASONS) errors.inc({ reason }, 0);
  const connected = new Gauge({
    name: 'sse_client_connected',
    help: '1 while an event stream is open, else 0.',
    registers: [registry],
  });
  connected.set(0);
  const lag = new Histogram({
    name: 'sse_client_event_lag_seconds',
    help: 'Delay from the publish timestamp (JSON data field ts, ms since the Unix epoch) to receipt.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    registry,
    eventReceived: () => events.inc(),
    reconnecting: () => reconnects.inc(),
    connectionError: (reason) => errors.inc({ reason }),
    setConnected: (open) => connected.set(open ? 1 : 0),
    observeLag(data, nowMs = performance.timeOrigin + performance.now()) {
      const ts = publishTimestamp(data);
      if (ts !== undefined) lag.observe(Math.max(0, nowMs - ts) / 1000);
    },
  };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port (port 0 = a random free port, for tests). */
export async function startMetricsServer(
  registry: Registry,
  host: string,
  port: number,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType }).end(text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`);
      },
    );
  });
  server.keepAliveTimeout = 1000;
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
