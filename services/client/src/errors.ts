// Typed client errors: every failure carries a reason from a small, bounded set. The reasons a
// stream connection fails with are the `reason` label of sse_client_connection_errors_total;
// publish() adds two of its own (PublishError).

/** Why an event stream connection failed (the metric's label values). */
export const CONNECTION_ERROR_REASONS = [
  'refused',
  'timeout',
  'http_status',
  'content_type',
  'network',
  'protocol',
  'too_large',
] as const;

/**
 * Every reason: the connection reasons, plus `invalid_argument` (publish() refused its arguments
 * before sending anything) and `aborted` (publish()'s signal aborted).
 */
export const ERROR_REASONS = [...CONNECTION_ERROR_REASONS, 'invalid_argument', 'aborted'] as const;

export type SseErrorReason = (typeof ERROR_REASONS)[number];

export interface SseClientErrorOptions {
  url: string;
  status?: number;
  /** True when the error ends the stream for good even with reconnection (spec: "fail the connection"). */
  fatal?: boolean;
  cause?: unknown;
}

export class SseClientError extends Error {
  override name = 'SseClientError';
  readonly reason: SseErrorReason;
  readonly url: string;
  readonly status: number | undefined;
  readonly fatal: boolean;

  constructor(reason: SseErrorReason, message: string, options: SseClientErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    this.url = options.url;
    this.status = options.status;
    this.fatal = options.fatal ?? false;
  }
}

const NETWORK_CODES: Record<string, [SseErrorReason, string]> = {
  ECONNREFUSED: ['refused', 'connection refused'],
  UND_ERR_CONNECT_TIMEOUT: ['timeout', 'connect timeout'],
  ETIMEDOUT: ['timeout', 'connect timeout'],
  UND_ERR_HEADERS_TIMEOUT: ['timeout', 'idle timeout: no response headers in time'],
  UND_ERR_BODY_TIMEOUT: ['timeout', 'idle timeout: no bytes received in time'],
  ECONNRESET: ['network', 'connection reset by peer'],
  EPIPE: ['network', 'connection closed while sending the request'],
  UND_ERR_SOCKET: ['network', 'connection closed by the server mid-stream'],
  UND_ERR_CLOSED: ['network', 'connection closed'],
  ENOTFOUND: ['network', 'host not found'],
  EAI_AGAIN: ['network', 'host name lookup failed temporarily'],
  EHOSTUNREACH: ['network', 'host unreachable'],
  ENETUNREACH: ['network', 'network unreachable'],
  UND_ERR_HEADERS_OVERFLOW: ['protocol', 'response headers too large'],
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: ['network', 'response body shorter than Content-Length'],
};

/** Turns an undici / socket error into an SseClientError (network errors are retryable). */
export function fromTransportError(err: unknown, url: string): SseClientError {
  if (err instanceof SseClientError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const known = NETWORK_CODES[code];
  if (known) {
    return new SseClientError(known[0], `${known[1]} (${code})`, { url, cause: err });
  }
  if (code.startsWith('HPE_')) {
    return new SseClientError('protocol', `malformed HTTP response (${code})`, { url, cause: err });
  }
  const message = String(e?.message ?? err).split('\n')[0];
  return new SseClientError('network', code ? `${message} (${code})` : message, {
    url,
    cause: err,
  });
}

export interface PublishErrorOptions extends SseClientErrorOptions {
  /** Requests sent (0 when the arguments were refused or the signal had aborted before). */
  attempts: number;
  /** The Idempotency-Key of every attempt: retry later with it and nothing is published twice. */
  idempotencyKey: string;
  /** The server's `error` code from its last answer, e.g. "idempotency_key_reused". */
  code?: string;
  /** The server's `message` from its last answer (one line). */
  serverMessage?: string;
  /** The server's `outcome` from its last answer ("unknown" or "not_published"), when it gave one. */
  outcome?: string;
}

/**
 * A publish() that failed for good. `fatal` is true when sending the same request again cannot
 * succeed (a final status, or bad arguments); false when the retries ran out on a retryable
 * failure or the signal aborted, so a later publish() with the same `idempotencyKey` may.
 */
export class PublishError extends SseClientError {
  override name = 'PublishError';
  readonly attempts: number;
  readonly idempotencyKey: string;
  readonly code: string | undefined;
  readonly serverMessage: string | undefined;
  readonly outcome: string | undefined;

  constructor(reason: SseErrorReason, message: string, options: PublishErrorOptions) {
    super(reason, message, options);
    this.attempts = options.attempts;
    this.idempotencyKey = options.idempotencyKey;
    this.code = options.code;
    this.serverMessage = options.serverMessage;
    this.outcome = options.outcome;
  }
}
