// GET /sse/test: the example stream (the tRPC-Cpp http_sse example). For N = start..count-1,
// `interval_ms` apart:
//   event: message\ndata: {"msg": "hello", "idx": N}\nid: N\n\n
// then the response ends. Every stream is a registered connection (it counts toward
// limits.maxConnections and the per-address limit) and obeys the slow-consumer rules:
//   interval_ms > 0   one chunk per event from a timer; cut past limits.maxBufferedBytes unsent.
//   interval_ms = 0   short streams (at most EXAMPLE_AT_ONCE_MAX_EVENTS): headers, every event and
//                     the terminator in one write. Longer ones are pumped: batches are written
//                     while the socket drains, never more than EXAMPLE_PUMP_HIGH_WATER bytes
//                     waiting, so a 100,000-event stream holds at most ~80 KB per client; a client
//                     that stops reading is cut by the stall rule (limits.stallTimeoutMs).
import type { OutgoingHttpHeaders } from 'node:http';
import type { ServerMetrics } from '../metrics.ts';
import type { SseConnection, StreamOwner } from '../sse/connection.ts';

export const EXAMPLE_DEFAULT_COUNT = 10;
export const EXAMPLE_MAX_COUNT = 100_000;
export const EXAMPLE_DEFAULT_INTERVAL_MS = 1000;
export const EXAMPLE_MAX_INTERVAL_MS = 60_000;
/** interval_ms=0 streams up to this many events leave in one write (at most ~62 KB). */
const EXAMPLE_AT_ONCE_MAX_EVENTS = 1000;
/** A pumped stream writes its next batch only while fewer bytes than this wait to be sent. */
const EXAMPLE_PUMP_HIGH_WATER = 64 * 1024;
const EXAMPLE_BATCH_BYTES = 16 * 1024;

function exampleEvent(idx: number): string {
  return `event: message\ndata: {"msg": "hello", "idx": ${idx}}\nid: ${idx}\n\n`;
}

function exampleEvents(start: number, count: number): Buffer {
  let out = '';
  for (let i = start; i < count; i++) out += exampleEvent(i);
  return Buffer.from(out);
}

/**
 * The example stream's progress on one connection: the next index, where the stream ends, and the
 * pacing timer of a paced stream, stopped when the stream closes.
 */
class ExampleProgress implements StreamOwner {
  next: number;
  readonly count: number;
  readonly intervalMs: number;
  timer: NodeJS.Timeout | null = null;

  constructor(next: number, count: number, intervalMs = 0) {
    this.next = next;
    this.count = count;
    this.intervalMs = intervalMs;
  }

  get done(): boolean {
    return this.next >= this.count;
  }

  streamClosed(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** What one /sse/test request asks for: events start..count-1, intervalMs apart (0: at once). */
export interface ExampleRequest {
  start: number;
  count: number;
  intervalMs: number;
}

/**
 * Starts the example stream on a registered connection: paced by a timer, in one write, or pumped
 * as the socket drains (see the file comment).
 */
export function startExample(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  example: ExampleRequest,
  metrics: ServerMetrics,
): void {
  if (example.intervalMs > 0) startPaced(conn, headers, example, metrics);
  else if (example.count - example.start <= EXAMPLE_AT_ONCE_MAX_EVENTS) {
    sendAtOnce(conn, headers, example, metrics);
  } else startPump(conn, headers, example, metrics);
}

/** The example stream's share of sse_events_sent_total and sse_bytes_sent_total. */
function countSent(metrics: ServerMetrics, events: number, bytes: number): void {
  metrics.eventsSent['/sse/test'].inc(events);
  metrics.bytesSent.inc(bytes);
}

/** The default stream's bytes, built once. */
const DEFAULT_BODY = exampleEvents(0, EXAMPLE_DEFAULT_COUNT);

/**
 * A short interval_ms=0 stream: headers, one chunk with every event and the terminator leave in
 * one write. The connection stays registered until the response has closed.
 */
function sendAtOnce(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  { start, count }: ExampleRequest,
  metrics: ServerMetrics,
): void {
  const body =
    start === 0 && count === EXAMPLE_DEFAULT_COUNT ? DEFAULT_BODY : exampleEvents(start, count);
  conn.respondWhole(headers, body);
  countSent(metrics, count - start, body.length);
}

/** A long interval_ms=0 stream: batches written as the client reads (see the file comment). */
function startPump(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  { start, count }: ExampleRequest,
  metrics: ServerMetrics,
): void {
  const progress = new ExampleProgress(start, count);
  conn.owner = progress;
  const first = nextBatch(progress);
  conn.sendHead(headers, [first.bytes]);
  countSent(metrics, first.events, first.bytes.length);
  pump(conn, progress, metrics);
}

interface Batch {
  bytes: Buffer;
  events: number;
}

/** The next events, about EXAMPLE_BATCH_BYTES of them, and how many they are. */
function nextBatch(progress: ExampleProgress): Batch {
  const from = progress.next;
  let out = '';
  while (!progress.done && out.length < EXAMPLE_BATCH_BYTES) out += exampleEvent(progress.next++);
  return { bytes: Buffer.from(out), events: progress.next - from };
}

function pump(conn: SseConnection, progress: ExampleProgress, metrics: ServerMetrics): void {
  while (!conn.ended) {
    if (progress.done) {
      conn.end();
      return;
    }
    if (conn.transport.pending() >= EXAMPLE_PUMP_HIGH_WATER) {
      conn.transport.drainSource().once('drain', () => pump(conn, progress, metrics));
      return;
    }
    const batch = nextBatch(progress);
    if (!conn.send(batch.bytes)) return;
    countSent(metrics, batch.events, batch.bytes.length);
  }
}

/** Paced streams: the first event now, then one per interval from a timer of the connection. */
function startPaced(
  conn: SseConnection,
  headers: OutgoingHttpHeaders,
  { start, count, intervalMs }: ExampleRequest,
  metrics: ServerMetrics,
): void {
  const first = Buffer.from(exampleEvent(start));
  conn.sendHead(headers, [first]);
  countSent(metrics, 1, first.length);
  const progress = new ExampleProgress(start + 1, count, intervalMs);
  conn.owner = progress;
  if (progress.done) conn.end();
  else progress.timer = setTimeout(exampleTick, intervalMs, conn, progress, metrics);
}

function exampleTick(conn: SseConnection, progress: ExampleProgress, metrics: ServerMetrics) {
  progress.timer = null;
  if (conn.ended) return;
  const bytes = Buffer.from(exampleEvent(progress.next));
  if (!conn.send(bytes)) return;
  countSent(metrics, 1, bytes.length);
  progress.next++;
  if (progress.done) conn.end();
  else progress.timer = setTimeout(exampleTick, progress.intervalMs, conn, progress, metrics);
}
