// How an event stream's bytes reach the client: one writer per transport, chosen once per stream,
// and the only place that ends a response (closing the socket after it when the client asked).
//   ChunkedSocketTransport  HTTP/1.1 with the socket to itself: HTTP chunks written straight to
//                           the socket, so the hub's one pre-framed chunk goes to every subscriber
//                           as is (one write each, no copy, no framing per subscriber).
//   ResponseTransport       everything else (HTTP/1.0 without chunking, a pipelined response
//                           still queued behind another): node's ServerResponse frames the payload.
//   respondWhole            a whole answer in one write (HEAD, the example's short streams).
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { frameChunk } from '../wire/encode.ts';

export interface StreamTransport {
  /** The status line and headers together with the first bytes, in one write. */
  sendHead(headers: OutgoingHttpHeaders, parts: readonly Buffer[]): void;
  /**
   * One payload of SSE bytes; `framed` is the same bytes as an HTTP/1.1 chunk when the caller
   * already built it (the hub's fan-out). Returns the bytes now waiting to be sent.
   */
  sendChunk(payload: Buffer, framed?: Buffer): number;
  /** Several payloads as one chunk, written without copying them. Returns the bytes waiting. */
  sendParts(parts: readonly Buffer[]): number;
  /** Ends the response (the chunked terminator); closes the socket after it when asked to. */
  end(closeSocket: boolean): void;
  /** Bytes written but not yet handed to the kernel. */
  pending(): number;
  /** What emits 'drain' once the pending bytes went out (the socket, or the response). */
  drainSource(): NodeJS.EventEmitter;
  /** A write went past the high-water mark: 'drain' will come (and only then is it sure to). */
  needsDrain(): boolean;
}

/** True when the request asked for `Connection: close`. */
export function wantsClose(req: IncomingMessage): boolean {
  const value = req.headers.connection;
  return value !== undefined && /(?:^|,)\s*close\s*(?:,|$)/i.test(value);
}

/**
 * A whole answer in one write (`body` absent: headers only, as for HEAD), the response ended,
 * and the socket closed after it when the client asked for `Connection: close`. The stream still
 * answers with the example's `Connection: keep-alive` header.
 */
export function respondWhole(
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  body: Buffer | null,
  closeSocket: boolean,
): void {
  res.writeHead(200, headers);
  const socket = res.socket;
  if (closeSocket && socket) res.end(body ?? undefined, () => socket.end());
  else res.end(body ?? undefined);
}

/** The response and its socket, which every transport writes through. */
abstract class ResponseBound {
  protected readonly res: ServerResponse;
  protected readonly socket: Socket;

  constructor(res: ServerResponse, socket: Socket) {
    this.res = res;
    this.socket = socket;
  }
}

export class ChunkedSocketTransport extends ResponseBound implements StreamTransport {
  sendHead(headers: OutgoingHttpHeaders, parts: readonly Buffer[]): void {
    const { res, socket } = this;
    res.writeHead(200, headers);
    socket.cork();
    res.flushHeaders();
    this.writeParts(parts);
    socket.uncork();
  }

  sendChunk(payload: Buffer, framed?: Buffer): number {
    this.socket.write(framed ?? frameChunk(payload));
    return this.socket.writableLength;
  }

  sendParts(parts: readonly Buffer[]): number {
    this.socket.cork();
    this.writeParts(parts);
    this.socket.uncork();
    return this.socket.writableLength;
  }

  /** One chunk made of `parts` (nothing for none), on a corked socket. */
  private writeParts(parts: readonly Buffer[]): void {
    const socket = this.socket;
    let total = 0;
    for (const p of parts) total += p.length;
    if (total === 0) return;
    socket.write(`${total.toString(16)}\r\n`, 'latin1');
    for (const p of parts) socket.write(p);
    socket.write('\r\n', 'latin1');
  }

  end(closeSocket: boolean): void {
    this.res.end();
    if (closeSocket) this.socket.end();
  }

  pending(): number {
    return this.socket.writableLength;
  }

  drainSource(): NodeJS.EventEmitter {
    return this.socket;
  }

  needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }
}

export class ResponseTransport extends ResponseBound implements StreamTransport {
  sendHead(headers: OutgoingHttpHeaders, parts: readonly Buffer[]): void {
    this.res.writeHead(200, headers);
    if (parts.length === 0) this.res.flushHeaders();
    for (const p of parts) this.res.write(p);
  }

  sendChunk(payload: Buffer): number {
    this.res.write(payload);
    return this.pending();
  }

  sendParts(parts: readonly Buffer[]): number {
    for (const p of parts) this.res.write(p);
    return this.pending();
  }

  end(closeSocket: boolean): void {
    if (!closeSocket) {
      this.res.end();
      return;
    }
    // A queued (pipelined) response reaches the socket later: close the socket after its bytes.
    const socket = this.socket;
    this.res.end(() => socket.end());
  }

  pending(): number {
    return this.res.writableLength + this.socket.writableLength;
  }

  drainSource(): NodeJS.EventEmitter {
    return this.res;
  }

  needsDrain(): boolean {
    return this.res.writableNeedDrain;
  }
}
