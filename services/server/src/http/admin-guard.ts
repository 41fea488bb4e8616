// Who may read the channel API (GET /channels...). With auth.adminToken set: the bearer token,
// compared in constant time, from anyone (401 otherwise). Without it: loopback clients only (403
// otherwise): the client's address must be loopback (behind a trusted proxy, the address the proxy
// forwarded: see client-address.ts) and, against DNS rebinding, the Host a loopback name. The API
// sends no CORS headers: pages of other origins cannot read it.
import type { IncomingMessage } from 'node:http';
import { bearerToken, isLoopback, TokenCheck, UNAUTHORIZED_HEADERS } from './auth.ts';
import type { ClientAddressOf } from './client-address.ts';
import { HttpError } from './errors.ts';
import { isLoopbackHost } from './publish-guard.ts';

const forbidden = (message: string) => new HttpError(403, { error: 'forbidden', message });

/** Signed tokens with the admin claim (auth/access.ts). */
export interface AdminTokenCheck {
  readonly jwtEnabled: boolean;
  authorizeAdmin(req: IncomingMessage): boolean | Promise<boolean>;
}

export class AdminGuard {
  private readonly token: TokenCheck | null;
  private readonly addressOf: ClientAddressOf;

  constructor(token: string, addressOf: ClientAddressOf) {
    this.token = token ? new TokenCheck(token) : null;
    this.addressOf = addressOf;
  }

  /**
   * The refusal for the request, or null when it may read the API: the admin token, or a signed
   * token whose claim says `"sse": {"admin": true}`; with neither configured, loopback clients.
   */
  async check(req: IncomingMessage, signed: AdminTokenCheck): Promise<HttpError | null> {
    if (this.token?.matches(bearerToken(req.headers))) return null;
    if (signed.jwtEnabled && (await signed.authorizeAdmin(req))) return null;
    if (this.token !== null || signed.jwtEnabled) {
      return new HttpError(
        401,
        {
          error: 'unauthorized',
          message:
            'a valid admin token is required (auth.adminToken, or a signed token with "sse": {"admin": true})',
        },
        UNAUTHORIZED_HEADERS,
      );
    }
    if (!isLoopback(this.addressOf(req))) {
      return forbidden(
        'without auth.adminToken the channel API answers loopback clients only (set SSE_ADMIN_TOKEN)',
      );
    }
    if (!isLoopbackHost(req.headers.host)) {
      return forbidden(
        'without auth.adminToken the channel API needs a loopback Host (localhost, 127.x.x.x or [::1])',
      );
    }
    return null;
  }
}
