// Refusals an EventSource can live with. A browser's EventSource closes for good on any status
// other than 200 and ignores Retry-After, so a page would stay dead after a brief overload. A
// request that accepts text/event-stream therefore gets, for a capacity refusal or during
// shutdown, a 200 event stream that holds a jittered `retry:` (from Retry-After) and one named
// notice event, then ends: the EventSource waits that long and reconnects by itself, keeping its
// Last-Event-ID (the notice carries no id). Other clients keep the 503/429 with Retry-After.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../http/errors.ts';
import type { RefusalReason } from '../sse/registry.ts';
import { encodeNotice } from '../wire/encode.ts';

export type NoticeEvent = 'overloaded' | 'shutdown' | 'unavailable';

export interface RefusalNotice {
  /** The SSE event name: never `error`, which would collide with EventSource's own error event. */
  event: NoticeEvent;
  /** The `error` code of the JSON refusal other clients get. */
  reason: string;
  message: string;
  /** The reconnection delay sent as `retry:`, in milliseconds. */
  retryMs: number;
}

/** The message of each refusal, in the JSON answer and in the notice alike. */
export const REFUSAL_MESSAGES: Record<RefusalReason, string> = {
  max_connections: 'the server is at maxConnections',
  per_ip_limit: 'too many open streams from this address',
  shutting_down: 'the server is shutting down',
};

/** Retry-After seconds scaled by a random factor in [0.5, 1.5), in milliseconds. */
function jitteredRetryMs(retryAfterSeconds: number, random: () => number): number {
  return Math.round(retryAfterSeconds * 1000 * (0.5 + random()));
}

/** True when the request's Accept header names text/event-stream (what EventSource sends). */
export function acceptsEventStream(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return accept?.toLowerCase().includes('text/event-stream') === true;
}

/**
 * The notice for a refusal; the delay is Retry-After seconds scaled by a random factor in
 * [0.5, 1.5), so that refused browsers do not all come back in the same instant.
 */
export function refusalNotice(
  reason: RefusalReason,
  retryAfterSeconds: number,
  random: () => number = Math.random,
): RefusalNotice {
  return {
    event: reason === 'shutting_down' ? 'shutdown' : 'overloaded',
    reason,
    message: REFUSAL_MESSAGES[reason],
    retryMs: jitteredRetryMs(retryAfterSeconds, random),
  };
}

/** A stream's 503 (the broker unreachable, limits.maxChannels, shutdown) as a notice. */
const NOTICE_OF_ERROR: Record<string, [NoticeEvent, string]> = {
  unavailable: ['shutdown', 'shutting_down'],
  broker_unavailable: ['unavailable', 'broker_unavailable'],
  channel_unavailable: ['unavailable', 'channel_unavailable'],
  channel_limit: ['overloaded', 'channel_limit'],
};

export function noticeFromError(
  err: HttpError,
  random: () => number = Math.random,
): RefusalNotice | null {
  const known = NOTICE_OF_ERROR[err.body.error];
  const retryAfter = Number(err.headers['Retry-After']);
  if (err.status !== 503 || known === undefined || !(retryAfter > 0)) return null;
  return {
    event: known[0],
    reason: known[1],
    message: err.body.message,
    retryMs: jitteredRetryMs(retryAfter, random),
  };
}

/** Writes the refusal as a complete, short event stream and ends the response. */
export function sendRefusalEvent(
  res: ServerResponse,
  notice: RefusalNotice,
  cors: Record<string, string>,
): void {
  const data = { error: notice.reason, message: notice.message, retryMs: notice.retryMs };
  const body = encodeNotice(notice.event, data, notice.retryMs);
  res.writeHead(200, {
    ...cors,
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    'Access-Control-Allow-Headers': 'Cache-Control',
  });
  res.end(body);
}

/** The same error answer with extra headers (CORS) added; the error's own headers win. */
export function withHeaders(err: HttpError, headers: Record<string, string>): HttpError {
  return new HttpError(err.status, err.body, { ...headers, ...err.headers });
}
