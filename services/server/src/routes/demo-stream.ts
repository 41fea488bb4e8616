// GET /sse/test: the tRPC-Cpp example's stream. For N = start..count-1, `interval_ms` apart:
//   event: message\ndata: {"msg": "hello", "idx": N}\nid: N\n\n
// then the response ends. With interval_ms=0 all events and the end leave in one write.

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ServerMetrics } from '../metrics.ts';
import type { SseConnection } from '../sse/connection.ts';

export const DEMO_DEFAULT_COUNT = 10;
export const DEMO_MAX_COUNT = 100_000;
export const DEMO_DEFAULT_INTERVAL_MS = 1000;
export const DEMO_MAX_INTERVAL_MS = 60_000;

export function demoEvent(idx: number): string {
  return `event: message\ndata: {"msg": "hello", "idx": ${idx}}\nid: ${idx}\n\n`;
}

function demoEvents(start: number, count: number): Buffer {
  let out = '';
  for (let i = start; i < count; i++) out += demoEvent(i);
  return Buffer.from(out);
}

/** The default stream's bytes, built once. */
const DEFAULT_BODY = demoEvents(0, DEMO_DEFAULT_COUNT);

/**
 * interval_ms=0: the whole stream is ready at once, so it needs no connection state at all:
 * headers, one chunk with every event and the terminator leave in one write (node's own
 * `res.end(body)` path, which corks them together).
 */
export function sendDemoAtOnce(
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  start: number,
  count: number,
  closeAfter: boolean,
  metrics: ServerMetrics,
): void {
  const began = performance.now();
  const body =
    start === 0 && count === DEMO_DEFAULT_COUNT ? DEFAULT_BODY : demoEvents(start, count);
  res.writeHead(200, headers);
  if (closeAfter) {
    const socket = res.socket;
    res.end(body, () => socket?.end());
  } else {
    res.end(body);
  }
  metrics.opened['/sse/test'].inc();
  metrics.eventsSent['/sse/test'].inc(count - start);
  metrics.bytesSent.inc(body.length);
  metrics.durations['/sse/test'].observe((performance.now() - began) / 1000);
}

/** Paced streams: the first event now, then one per interval from a timer of the connection. */
export function startDemoStream(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  start: number,
  count: number,
  intervalMs: number,
  metrics: ServerMetrics,
): void {
  const first = Buffer.from(demoEvent(start));
  conn.open(headers, [first]);
  metrics.eventsSent['/sse/test'].inc();
  metrics.bytesSent.inc(first.length);
  conn.next = start + 1;
  conn.count = count;
  conn.intervalMs = intervalMs;
  if (conn.next >= count) conn.end();
  else conn.timer = setTimeout(demoTick, intervalMs, conn, metrics);
}

function demoTick(conn: SseConnection, metrics: ServerMetrics): void {
  conn.timer = null;
  if (conn.ended) return;
  const bytes = Buffer.from(demoEvent(conn.next));
  if (!conn.write(bytes)) return;
  conn.lastWriteAt = Date.now();
  metrics.eventsSent['/sse/test'].inc();
  metrics.bytesSent.inc(bytes.length);
  conn.next++;
  if (conn.next >= conn.count) conn.end();
  else conn.timer = setTimeout(demoTick, conn.intervalMs, conn, metrics);
}
