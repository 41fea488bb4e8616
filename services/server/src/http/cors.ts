// CORS for the event streams and the publish API: `*` or a list of exact origins, optionally with
// credentials (cookies, EventSource's withCredentials): then a listed origin is echoed with
// `Access-Control-Allow-Credentials: true` (browsers refuse credentials with `*`, and so does the
// config check).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const PREFLIGHT_HEADERS =
  'Cache-Control, Last-Event-ID, Authorization, Content-Type, Idempotency-Key';

export class Cors {
  private readonly any: boolean;
  private readonly allowed: Set<string>;
  private readonly credentials: boolean;

  constructor(allowedOrigins: readonly string[], allowCredentials = false) {
    this.any = allowedOrigins.includes('*');
    this.allowed = new Set(allowedOrigins);
    this.credentials = allowCredentials && !this.any;
  }

  /** The Access-Control-Allow-Origin value for a request, or null when its origin is not allowed. */
  allowOrigin(headers: IncomingHttpHeaders): string | null {
    if (this.any) return '*';
    const origin = headers.origin;
    return origin !== undefined && this.allowed.has(origin) ? origin : null;
  }

  /** Headers that carry the CORS answer for a simple (non-preflight) response. */
  responseHeaders(headers: IncomingHttpHeaders): Record<string, string> {
    const origin = this.allowOrigin(headers);
    if (origin === null) return this.any ? {} : { Vary: 'Origin' };
    if (this.any) return { 'Access-Control-Allow-Origin': origin };
    return this.credentials
      ? {
          'Access-Control-Allow-Origin': origin,
          'Access-Control-Allow-Credentials': 'true',
          Vary: 'Origin',
        }
      : { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  }

  /** The 204 answer to a preflight request for the given methods. */
  preflightHeaders(headers: IncomingHttpHeaders, methods: string): OutgoingHttpHeaders {
    return {
      ...this.responseHeaders(headers),
      'Access-Control-Allow-Methods': methods,
      'Access-Control-Allow-Headers': PREFLIGHT_HEADERS,
      'Access-Control-Max-Age': '86400',
      'Content-Length': '0',
    };
  }
}

/**
 * The event-stream response headers, in the order of the tRPC-Cpp example, plus
 * `X-Accel-Buffering: no` so reverse proxies do not buffer. HTTP/1.0 has no chunked encoding and
 * no keep-alive for a body of unknown length, so it gets `Connection: close` instead.
 */
export function streamHeaders(cors: Record<string, string>, http10: boolean): OutgoingHttpHeaders {
  const head: OutgoingHttpHeaders = http10
    ? { Connection: 'close', 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' }
    : {
        Connection: 'keep-alive',
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        'Transfer-Encoding': 'chunked',
      };
  Object.assign(head, cors);
  head['Access-Control-Allow-Headers'] = 'Cache-Control';
  head['X-Accel-Buffering'] = 'no';
  return head;
}
