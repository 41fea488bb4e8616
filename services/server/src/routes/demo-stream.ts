// GET /sse/test: the tRPC-Cpp example's stream. For N = start..count-1, `interval_ms` apart:
//   event: message\ndata: {"msg": "hello", "idx": N}\nid: N\n\n
// then the response ends. Every stream is a registered connection (it counts toward
// limits.maxConnections and the per-address limit) and obeys the slow-consumer rules:
//   interval_ms > 0   one chunk per event from a timer; cut past limits.maxBufferedBytes unsent.
//   interval_ms = 0   short streams (at most DEMO_AT_ONCE_MAX_EVENTS): headers, every event and the
//                     terminator in one write. Longer ones are pumped: batches are written while
//                     the socket drains, never more than DEMO_PUMP_HIGH_WATER bytes waiting, so a
//                     100,000-event stream holds at most ~80 KB per client; a client that stops
//                     reading is cut by the registry's stall rule (limits.stallTimeoutMs).

import type { OutgoingHttpHeaders } from 'node:http';
import type { ServerMetrics } from '../metrics.ts';
import type { SseConnection } from '../sse/connection.ts';
import { DemoProgress } from '../sse/demo-progress.ts';

export const DEMO_DEFAULT_COUNT = 10;
export const DEMO_MAX_COUNT = 100_000;
export const DEMO_DEFAULT_INTERVAL_MS = 1000;
export const DEMO_MAX_INTERVAL_MS = 60_000;
/** interval_ms=0 streams up to this many events leave in one write (at most ~62 KB). */
export const DEMO_AT_ONCE_MAX_EVENTS = 1000;
/** A pumped stream writes its next batch only while fewer bytes than this wait to be sent. */
export const DEMO_PUMP_HIGH_WATER = 64 * 1024;
const DEMO_BATCH_BYTES = 16 * 1024;

export function demoEvent(idx: number): string {
  return `event: message\ndata: {"msg": "hello", "idx": ${idx}}\nid: ${idx}\n\n`;
}

function demoEvents(start: number, count: number): Buffer {
  let out = '';
  for (let i = start; i < count; i++) out += demoEvent(i);
  return Buffer.from(out);
}

/** What one /sse/test request asks for: events start..count-1, intervalMs apart (0: at once). */
export interface DemoRequest {
  start: number;
  count: number;
  intervalMs: number;
}

/**
 * Starts the example stream on a registered connection: paced by a timer, in one write, or pumped
 * as the socket drains (see the file comment).
 */
export function startDemo(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  demo: DemoRequest,
  metrics: ServerMetrics,
): void {
  if (demo.intervalMs > 0) startPaced(conn, headers, demo, metrics);
  else if (demo.count - demo.start <= DEMO_AT_ONCE_MAX_EVENTS) {
    sendAtOnce(conn, headers, demo, metrics);
  } else startPump(conn, headers, demo, metrics);
}

/** The demo stream's share of sse_events_sent_total and sse_bytes_sent_total. */
function countSent(metrics: ServerMetrics, events: number, bytes: number): void {
  metrics.eventsSent['/sse/test'].inc(events);
  metrics.bytesSent.inc(bytes);
}

/** The default stream's bytes, built once. */
const DEFAULT_BODY = demoEvents(0, DEMO_DEFAULT_COUNT);

/**
 * A short interval_ms=0 stream: headers, one chunk with every event and the terminator leave in
 * one write (node's own `res.end(body)` path, which corks them together). The connection stays
 * registered until the response has closed.
 */
function sendAtOnce(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  { start, count }: DemoRequest,
  metrics: ServerMetrics,
): void {
  const body =
    start === 0 && count === DEMO_DEFAULT_COUNT ? DEFAULT_BODY : demoEvents(start, count);
  const { res } = conn;
  conn.opened = true;
  conn.ended = true;
  conn.closeReason = 'complete';
  res.writeHead(200, headers);
  if (conn.closeAfterEnd) {
    const socket = res.socket;
    res.end(body, () => socket?.end());
  } else {
    res.end(body);
  }
  countSent(metrics, count - start, body.length);
}

/** A long interval_ms=0 stream: batches written as the client reads (see the file comment). */
function startPump(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  { start, count }: DemoRequest,
  metrics: ServerMetrics,
): void {
  conn.demo = new DemoProgress(start, count);
  const first = nextBatch(conn.demo);
  conn.open(headers, [first.bytes]);
  countBatch(conn, first, metrics);
  pump(conn, metrics);
}

interface Batch {
  bytes: Buffer;
  events: number;
}

/** The next events, about DEMO_BATCH_BYTES of them, and how many they are. */
function nextBatch(demo: DemoProgress): Batch {
  const from = demo.next;
  let out = '';
  while (!demo.done && out.length < DEMO_BATCH_BYTES) out += demoEvent(demo.next++);
  return { bytes: Buffer.from(out), events: demo.next - from };
}

function countBatch(conn: SseConnection, batch: Batch, metrics: ServerMetrics): void {
  conn.lastWriteAt = Date.now();
  countSent(metrics, batch.events, batch.bytes.length);
}

function pump(conn: SseConnection, metrics: ServerMetrics): void {
  while (!conn.ended) {
    if (conn.demo!.done) {
      conn.end();
      return;
    }
    if (conn.transport.pending() >= DEMO_PUMP_HIGH_WATER) {
      conn.transport.drainSource().once('drain', () => pump(conn, metrics));
      return;
    }
    const batch = nextBatch(conn.demo!);
    if (!conn.send(batch.bytes)) return;
    countBatch(conn, batch, metrics);
  }
}

/** Paced streams: the first event now, then one per interval from a timer of the connection. */
function startPaced(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  { start, count, intervalMs }: DemoRequest,
  metrics: ServerMetrics,
): void {
  const first = Buffer.from(demoEvent(start));
  conn.open(headers, [first]);
  countSent(metrics, 1, first.length);
  const demo = new DemoProgress(start + 1, count, intervalMs);
  conn.demo = demo;
  if (demo.done) conn.end();
  else demo.timer = setTimeout(demoTick, intervalMs, conn, metrics);
}

function demoTick(conn: SseConnection, metrics: ServerMetrics): void {
  const demo = conn.demo!;
  demo.timer = null;
  if (conn.ended) return;
  const bytes = Buffer.from(demoEvent(demo.next));
  if (!conn.send(bytes)) return;
  conn.lastWriteAt = Date.now();
  countSent(metrics, 1, bytes.length);
  demo.next++;
  if (demo.done) conn.end();
  else demo.timer = setTimeout(demoTick, demo.intervalMs, conn, metrics);
}
