// Who may publish, checked before the body is read. A token (auth/access.ts: publish.token or a
// signed token) grants it. With no token configured for publishing (loopback mode), the request
// must come from a loopback address, and, because a web
// page the developer visits can send requests to their local server (CSRF) or reach it under a
// hostile DNS name that resolves to 127.0.0.1 (DNS rebinding), also:
//   - Host must be a loopback name: localhost, 127.x.x.x or [::1], with an optional port;
//   - Origin, when present, must be an origin listed in cors.allowedOrigins (the wildcard "*"
//     does not count here) or a loopback origin (http(s)://localhost|127.x|[::1][:port]).
// In both modes the body must be declared `Content-Type: application/json` (415 otherwise): no
// HTML form can send that cross-site without a CORS preflight.
import type { IncomingHttpHeaders } from 'node:http';
import { isLoopback } from './auth.ts';
import { HttpError } from './errors.ts';

const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;
const LOOPBACK_ORIGIN = /^https?:\/\/(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

/** True for a Host header naming this machine by a loopback name. */
export function isLoopbackHost(host: string | undefined): boolean {
  return host !== undefined && LOOPBACK_HOST.test(host);
}

/** True for `application/json`, with or without parameters (charset). */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const semi = value.indexOf(';');
  return (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase() === 'application/json';
}

const forbidden = (message: string) => new HttpError(403, { error: 'forbidden', message });

export class PublishGuard {
  private readonly origins: ReadonlySet<string>;

  constructor(allowedOrigins: readonly string[]) {
    this.origins = new Set(allowedOrigins.filter((o) => o !== '*'));
  }

  /**
   * The refusal for a publish request, or null when it may go on to its body. `tokenGranted`:
   * a token allowed it (see auth/access.ts); without one (no token configured for publishing),
   * the loopback rules apply.
   */
  check(
    headers: IncomingHttpHeaders,
    remoteAddress: string | undefined,
    tokenGranted: boolean,
  ): HttpError | null {
    if (!tokenGranted) {
      if (!isLoopback(remoteAddress)) {
        return forbidden(
          'publishing without publish.token is accepted only from loopback addresses',
        );
      }
      if (!isLoopbackHost(headers.host)) {
        return forbidden(
          'publishing without publish.token needs a loopback Host (localhost, 127.x.x.x or [::1])',
        );
      }
      const origin = headers.origin;
      if (origin !== undefined && !this.origins.has(origin) && !LOOPBACK_ORIGIN.test(origin)) {
        return forbidden(
          'publishing without publish.token is refused from this Origin (list it in cors.allowedOrigins or set publish.token)',
        );
      }
    }
    if (!isJsonContentType(headers['content-type'])) {
      return new HttpError(415, {
        error: 'unsupported_media_type',
        message: 'the body must be sent as Content-Type: application/json',
      });
    }
    return null;
  }
}
