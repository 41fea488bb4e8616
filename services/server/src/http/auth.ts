// Bearer-token checks, compared in constant time; tokens are never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Checks presented tokens against one configured token in constant time. */
export class TokenCheck {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = digest(token);
  }

  matches(presented: string | null): boolean {
    if (presented === null) return false;
    return timingSafeEqual(digest(presented), this.expected);
  }
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(headers: IncomingHttpHeaders): string | null {
  const auth = headers.authorization;
  if (auth === undefined) return null;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
  return m ? m[1]! : null;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a.startsWith('127.');
}

export const UNAUTHORIZED_HEADERS = { 'WWW-Authenticate': 'Bearer realm="http-sse"' };
