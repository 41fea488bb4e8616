// Answers for requests that must not reach a route: an HTTP/1.1 request without Host, and the
// last-resort 500 for an unexpected error of one request (the process and other streams go on).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { endSocketWithJson, sendJson } from './errors.ts';

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

/** CONNECT (node hands it to the 'connect' event, or closes the socket silently): a 405 JSON. */
export function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => {});
  endSocketWithJson(socket, 405, { error: 'method_not_allowed', message: 'CONNECT is not served' });
}

/** An `Expect` other than 100-continue: a 417 JSON (node's own 417 has no body). */
export function refuseExpectation(req: IncomingMessage, res: ServerResponse): void {
  sendJson(
    res,
    417,
    {
      error: 'expectation_failed',
      message: `Expect: ${String(req.headers.expect).slice(0, 64)} is not supported`,
    },
    { Connection: 'close' },
  );
}
