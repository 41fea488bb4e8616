// Every refusal of a request the service cannot take, in one table. A row gives the HTTP status,
// the JSON `error` code (the reason itself), the message, Retry-After, the notice an EventSource
// gets instead, and whether sse_connections_rejected_total counts it. The JSON answer and the
// notice come from the same row, so they carry the same code.
//
// The notice: a browser's EventSource closes for good on any status other than 200 and ignores
// Retry-After, so a page would stay dead after a brief overload. A stream request that accepts
// text/event-stream therefore gets, for a refusal with a notice, a 200 event stream that holds a
// jittered `retry:` (Retry-After scaled by [0.5, 1.5)) and one named event, then ends: the
// EventSource waits that long and reconnects by itself, keeping its Last-Event-ID (the notice
// carries no id). Other clients get the status with Retry-After.
import { HttpError } from './http/errors.ts';
import { encodeNotice } from './wire/encode.ts';

/** The SSE event name of a notice: never `error`, which would collide with EventSource's own. */
export type NoticeEvent = 'overloaded' | 'shutdown' | 'unavailable';

interface RefusalRow {
  readonly status: number;
  readonly message: string;
  /** Seconds; null: no Retry-After (a refusal that waiting does not cure). */
  readonly retryAfter: number | null;
  readonly notice: NoticeEvent | null;
  /** Counted in sse_connections_rejected_total{reason} when a stream is refused for it. */
  readonly counted: boolean;
}

export const REFUSALS = {
  max_connections: {
    status: 503,
    message: 'the server is at maxConnections',
    retryAfter: 5,
    notice: 'overloaded',
    counted: true,
  },
  new_stream_rate: {
    status: 503,
    message:
      'new streams arrive faster than limits.maxNewStreamsPerSecond; come back after Retry-After',
    retryAfter: 1,
    notice: 'overloaded',
    counted: true,
  },
  per_ip_limit: {
    status: 429,
    message: 'too many open streams from this address',
    retryAfter: 5,
    notice: 'overloaded',
    counted: true,
  },
  shutting_down: {
    status: 503,
    message: 'the server is shutting down',
    retryAfter: 1,
    notice: 'shutdown',
    counted: false,
  },
  broker_unavailable: {
    status: 503,
    message: 'the event broker is unreachable; try again shortly',
    retryAfter: 2,
    notice: 'unavailable',
    counted: false,
  },
  channel_unavailable: {
    status: 503,
    message: 'the channel cannot be served now',
    retryAfter: 5,
    notice: 'unavailable',
    counted: false,
  },
  channel_limit: {
    status: 503,
    message: 'this server holds limits.maxChannels channels; no new channel can start',
    retryAfter: 30,
    notice: 'overloaded',
    counted: false,
  },
  unauthorized: {
    status: 401,
    message: 'a valid token is required',
    retryAfter: null,
    notice: null,
    counted: true,
  },
  bad_request: {
    status: 400,
    message: 'the request is malformed',
    retryAfter: null,
    notice: null,
    counted: true,
  },
} as const satisfies Record<string, RefusalRow>;

export type RefusalReason = keyof typeof REFUSALS;

/** The reasons sse_connections_rejected_total counts, in table order. */
export const REJECT_REASONS = (Object.keys(REFUSALS) as RefusalReason[]).filter(
  (r) => REFUSALS[r].counted,
) as readonly RejectReason[];
export type RejectReason = {
  [R in RefusalReason]: (typeof REFUSALS)[R]['counted'] extends true ? R : never;
}[RefusalReason];

/** What an EventSource gets instead of a refusal: the event name, the code, the delay. */
export interface RefusalNotice {
  event: NoticeEvent;
  reason: RefusalReason;
  message: string;
  /** The reconnection delay sent as `retry:`, in milliseconds. */
  retryMs: number;
}

/** A refusal as an error: the JSON answer (status, body, Retry-After) and, if any, its notice. */
export class Refusal extends HttpError {
  readonly reason: RefusalReason;

  constructor(reason: RefusalReason, message?: string, details: Record<string, unknown> = {}) {
    const row: RefusalRow = REFUSALS[reason];
    const headers: Record<string, string> =
      row.retryAfter === null ? {} : { 'Retry-After': String(row.retryAfter) };
    super(row.status, { error: reason, message: message ?? row.message, ...details }, headers);
    this.reason = reason;
  }

  /** The notice for this refusal (null when it has none), its delay jittered by `random`. */
  notice(random: () => number = Math.random): RefusalNotice | null {
    const row: RefusalRow = REFUSALS[this.reason];
    if (row.notice === null || row.retryAfter === null) return null;
    return {
      event: row.notice,
      reason: this.reason,
      message: this.body.message,
      retryMs: jitteredRetryMs(row.retryAfter, random),
    };
  }
}

/** Retry-After seconds scaled by a random factor in [0.5, 1.5), in milliseconds. */
export function jitteredRetryMs(retryAfterSeconds: number, random: () => number): number {
  return Math.round(retryAfterSeconds * 1000 * (0.5 + random()));
}

/** The notice of an error answer: a refusal's, or null for any other error (a 500, a 404). */
export function noticeOf(err: HttpError, random: () => number = Math.random): RefusalNotice | null {
  return err instanceof Refusal ? err.notice(random) : null;
}

/** The notice of a refusal reason (its table message), with a jittered delay. */
export function refusalNotice(
  reason: RefusalReason,
  random: () => number = Math.random,
): RefusalNotice | null {
  return new Refusal(reason).notice(random);
}

/** A notice as SSE bytes: `retry:`, `event:` and `data:` JSON in one block. */
export function noticeBody(notice: RefusalNotice): string {
  const data = { error: notice.reason, message: notice.message, retryMs: notice.retryMs };
  return encodeNotice(notice.event, data, notice.retryMs);
}
