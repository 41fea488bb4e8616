// HTTP transport: one GET per connection attempt with undici, checked the way EventSource checks a
// response (status 200 and a text/event-stream media type), handing back the body stream.
import { Agent, type Dispatcher, interceptors } from 'undici';
import { explainErrorBody, readBounded } from './error-body.ts';
import { fromTransportError, SseClientError } from './errors.ts';

export interface TransportOptions {
  /** Extra request headers (names are matched case-insensitively; they may replace Accept). */
  headers?: Record<string, string>;
  /** Sent as Last-Event-ID when not empty. */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Idle timeout in ms for the response headers and between body chunks; 0 = none. */
  timeoutMs?: number;
  /** Connect timeout in ms (used only when no `dispatcher` is given); 0 = none. */
  connectTimeoutMs?: number;
  /** undici dispatcher to use (share one Agent across many streams); default: a cached Agent. */
  dispatcher?: Dispatcher;
}

export type OpenResult =
  | { status: 200; body: Dispatcher.ResponseData['body'] }
  | { status: 204; body: null };

const agents = new Map<number, Dispatcher>();

/** An Agent (follows up to 10 redirects, like fetch) per connect timeout, created once. */
export function defaultDispatcher(connectTimeoutMs = 10_000): Dispatcher {
  let agent = agents.get(connectTimeoutMs);
  if (!agent) {
    agent = new Agent({ connectTimeout: connectTimeoutMs, keepAliveTimeout: 4000 }).compose(
      interceptors.redirect({ maxRedirections: 10 }),
    );
    agents.set(connectTimeoutMs, agent);
  }
  return agent;
}

/** Closes the cached default Agents (lets a process exit promptly once streams are done). */
export async function closeDefaultDispatchers(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.destroy().catch(() => {})));
}

/** Lower-cased request headers common to every attempt of one stream. */
export function baseHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = {
    accept: 'text/event-stream',
    'cache-control': 'no-cache',
  };
  for (const [name, value] of Object.entries(extra)) headers[name.toLowerCase()] = value;
  return headers;
}

/** Header values go on the wire as latin1: send the UTF-8 bytes of the ID, as the spec asks. */
function utf8Header(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for non-ASCII only
  return /^[\x00-\x7f]*$/.test(value) ? value : Buffer.from(value, 'utf8').toString('latin1');
}

const ignore = (): void => {};

/** Destroys a response body we will not read (undici reports that as an abort error: ignore it). */
export function discard(body: {
  on(event: 'error', fn: () => void): unknown;
  destroy(): unknown;
}): void {
  body.on('error', ignore);
  body.destroy();
}

/** True for `text/event-stream`, with or without parameters, in any letter case. */
export function isEventStreamType(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  if (!value) return false;
  const semi = value.indexOf(';');
  const media = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  return media === 'text/event-stream';
}

/**
 * Opens one connection. Resolves with the body of a 200 text/event-stream response or with a 204;
 * rejects with an SseClientError: network-level failures are retryable, a bad status or
 * Content-Type is `fatal` (the spec's "fail the connection"); a bad status carries the server's
 * explanation (error-body.ts). The caller owns `body`.
 */
export async function openStream(
  target: URL,
  headers: Record<string, string>,
  options: TransportOptions,
): Promise<OpenResult> {
  const url = target.href;
  const dispatcher = options.dispatcher ?? defaultDispatcher(options.connectTimeoutMs);
  const lastEventId = options.lastEventId;
  const sent =
    lastEventId && lastEventId.length > 0
      ? { ...headers, 'last-event-id': utf8Header(lastEventId) }
      : headers;
  const timeout = options.timeoutMs ?? 0;
  let res: Dispatcher.ResponseData;
  try {
    res = await dispatcher.request({
      origin: target.origin,
      path: `${target.pathname}${target.search}`,
      method: 'GET',
      headers: sent,
      signal: options.signal,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  } catch (err) {
    throw fromTransportError(err, url);
  }
  const { statusCode, body } = res;
  if (statusCode === 204) {
    discard(body);
    return { status: 204, body: null };
  }
  if (statusCode !== 200) {
    const explanation = explainErrorBody(await readBounded(body));
    discard(body);
    const text = res.statusText ? ` ${res.statusText}` : '';
    const because = explanation ? `: ${explanation}` : '';
    throw new SseClientError(
      'http_status',
      `HTTP status ${statusCode}${text}, expected 200${because}`,
      { url, status: statusCode, fatal: true },
    );
  }
  const type = res.headers['content-type'];
  if (!isEventStreamType(type)) {
    discard(body);
    const shown = type === undefined ? 'no Content-Type' : `Content-Type ${JSON.stringify(type)}`;
    throw new SseClientError('content_type', `${shown}, expected text/event-stream`, {
      url,
      status: statusCode,
      fatal: true,
    });
  }
  return { status: 200, body };
}
