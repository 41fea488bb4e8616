// How a refused stream request is answered (the refusal itself comes from refusals.ts): a GET
// that accepts text/event-stream (what EventSource sends) gets the refusal's notice as a short
// 200 event stream when it has one, so the browser reconnects by itself; every other request gets
// the JSON answer with its status and Retry-After. CORS headers on both.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type HttpError, sendJson } from '../http/errors.ts';
import { noticeBody, Refusal, type RefusalNotice } from '../refusals.ts';

/** True when the request's Accept header names text/event-stream (what EventSource sends). */
export function acceptsEventStream(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return accept?.toLowerCase().includes('text/event-stream') === true;
}

/** Answers a refused stream request: the notice for an EventSource, else the JSON refusal. */
export function sendRefusal(
  req: IncomingMessage,
  res: ServerResponse,
  err: HttpError,
  cors: Record<string, string>,
): void {
  const notice =
    err instanceof Refusal && req.method === 'GET' && acceptsEventStream(req) ? err.notice() : null;
  if (notice !== null) sendNotice(res, notice, cors);
  else sendJson(res, err.status, err.body, { ...cors, ...err.headers });
}

/** Writes the notice as a complete, short event stream and ends the response. */
function sendNotice(res: ServerResponse, notice: RefusalNotice, cors: Record<string, string>) {
  const body = noticeBody(notice);
  res.writeHead(200, {
    ...cors,
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    'Access-Control-Allow-Headers': 'Cache-Control',
  });
  res.end(body);
}
