// Answers for requests that must not reach a route: an HTTP/1.1 request without Host, and the
// last-resort 500 for an unexpected error of one request (the process and other streams go on).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { sendJson } from './errors.ts';

/** Answers 400 JSON and returns true for an HTTP/1.1 request without a Host header (RFC 9112 3.2). */
export function missingHost(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.headers.host !== undefined || req.httpVersionMinor === 0) return false;
  sendJson(
    res,
    400,
    { error: 'bad_request', message: 'an HTTP/1.1 request needs a Host header' },
    { Connection: 'close' },
  );
  return true;
}

/** An unexpected error while serving one request: logged once, a 500 (or a cut) for it alone. */
export function lastResort(
  err: unknown,
  req: IncomingMessage,
  res: ServerResponse,
  logger: Logger,
): void {
  logger.error({ err, method: req.method, url: req.url?.slice(0, 256) }, 'request failed');
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  try {
    sendJson(res, 500, { error: 'internal', message: 'internal server error' });
  } catch {
    res.destroy();
  }
}
