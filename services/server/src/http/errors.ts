// JSON error bodies for every refusal: { "error": <code>, "message": <text>, ...details }.
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

export interface ErrorBody {
  error: string;
  message: string;
  [detail: string]: unknown;
}

export class HttpError extends Error {
  readonly status: number;
  readonly body: ErrorBody;
  readonly headers: Record<string, string>;

  constructor(status: number, body: ErrorBody, headers: Record<string, string> = {}) {
    super(body.message);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** Writes a JSON error response on a plain node:http response. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, err.body, err.headers);
}

export const badRequest = (message: string, details: Record<string, unknown> = {}) =>
  new HttpError(400, { error: 'bad_request', message, ...details });

/**
 * Answers on a bare socket (no ServerResponse: parser errors, CONNECT) with a JSON error and
 * closes it.
 */
export function endSocketWithJson(socket: Duplex, status: number, body: ErrorBody): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${text}`,
  );
}
