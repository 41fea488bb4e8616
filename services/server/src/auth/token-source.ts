// Where a request's token is read, in this order: `Authorization: Bearer <token>`, the
// `access_token` query parameter (browsers' EventSource cannot set headers), a cookie (the name is
// auth.jwt.cookie, `sse_token` by default). The first place that holds a token decides; the others
// are not looked at. Plus the redaction of `access_token` from URLs that are logged.
import type { IncomingHttpHeaders } from 'node:http';
import { bearerToken } from '../http/auth.ts';

export type TokenSourceName = 'header' | 'query' | 'cookie';

/** Every place, in the order they are read. */
export const ALL_TOKEN_SOURCES: readonly TokenSourceName[] = ['header', 'query', 'cookie'];

/** What the token lookup needs of a request: node's IncomingMessage is one. */
export interface TokenRequest {
  headers: IncomingHttpHeaders;
  /** The request target (path and query), as node gives it in `req.url`. */
  url?: string;
}

export interface PresentedToken {
  token: string;
  source: TokenSourceName;
}

export const QUERY_PARAMETER = 'access_token';

/** The first non-empty `access_token` query parameter of a request target, or null. */
export function queryToken(url: string | undefined): string | null {
  if (url === undefined) return null;
  const q = url.indexOf('?');
  if (q < 0) return null;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? url.length : hash);
  for (const value of new URLSearchParams(query).getAll(QUERY_PARAMETER)) {
    if (value !== '') return value;
  }
  return null;
}

/**
 * The first non-empty value of cookie `name` in a Cookie header, or null. Tolerant of odd input:
 * pairs without `=`, stray spaces and semicolons, quoted values, bad percent-encoding (kept as
 * sent), several Cookie headers.
 */
export function cookieValue(header: string | string[] | undefined, name: string): string | null {
  const text: unknown = Array.isArray(header) ? header.join('; ') : header;
  if (typeof text !== 'string' || !text.includes(name)) return null;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1);
    }
    if (value.includes('%')) {
      try {
        value = decodeURIComponent(value);
      } catch {
        // Not percent-encoding after all: the value as sent.
      }
    }
    if (value !== '') return value;
  }
  return null;
}

/** The token of the first of `sources` (in their order) that holds one, or null. */
export function findToken(
  req: TokenRequest,
  sources: readonly TokenSourceName[],
  cookieName: string,
): PresentedToken | null {
  for (const source of sources) {
    let token: string | null;
    if (source === 'header') token = bearerToken(req.headers);
    else if (source === 'query') token = queryToken(req.url);
    else token = cookieValue(req.headers.cookie, cookieName);
    if (token !== null) return { token, source };
  }
  return null;
}

const REDACTED = `${QUERY_PARAMETER}=[redacted]`;

/**
 * A URL (or request target) fit for logs: the value of every `access_token` query parameter is
 * replaced by `[redacted]`, however its name is percent-encoded (`access%5Ftoken` reaches the token
 * lookup as `access_token` too). Everything else is kept as it was.
 */
export function redactAccessToken(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const end = hash < 0 ? url.length : hash;
  const parts = url.slice(q + 1, end).split('&');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    // The name as URLSearchParams reads it ('+' is a space, lenient percent-decoding).
    const name = new URLSearchParams(`${rawName}=`).keys().next().value;
    if (name === QUERY_PARAMETER) {
      parts[i] = REDACTED;
      changed = true;
    }
  }
  return changed ? `${url.slice(0, q + 1)}${parts.join('&')}${url.slice(end)}` : url;
}
