// One open event stream. Holds no closures and no timers of its own on the fan-out path: the hub
// and the registry keep their per-connection state in plain fields here.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { chunkPayload, frameChunk } from './encode.ts';
import type { Subscription } from './subscription.ts';

export type StreamRoute = '/sse/test' | '/sse/channels/:channel';

/** Why a stream ended, for logs and metrics. */
export type CloseReason = 'complete' | 'client' | 'slow_consumer' | 'shutdown' | 'error';

/** Something that must forget a connection when it closes (the hub). */
export interface ConnectionOwner {
  detach(conn: SseConnection): void;
}

/** True when the request asked for `Connection: close`. */
export function wantsClose(req: IncomingMessage): boolean {
  const value = req.headers.connection;
  return value !== undefined && /(?:^|,)\s*close\s*(?:,|$)/i.test(value);
}

export class SseConnection {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly socket: Socket;
  readonly route: StreamRoute;
  readonly ip: string;
  readonly openedAt = performance.now();
  /** Chunk frames go straight to the socket; false for HTTP/1.0, HEAD or a queued response. */
  readonly raw: boolean;
  /** Queued bytes above which the subscriber counts as a slow consumer and is cut off. */
  readonly maxBufferedBytes: number;
  /**
   * The client asked for `Connection: close`. The stream still answers with the example's
   * `Connection: keep-alive` header, but the socket is closed after the response ends.
   */
  readonly closeAfterEnd: boolean;
  /** The status line and headers were written (heartbeats and ends wait for it). */
  opened = false;
  /** No more writes: the response was ended or the socket is gone. */
  ended = false;
  closeReason: CloseReason = 'client';
  /** Date.now() of the last write, for the heartbeat. */
  lastWriteAt = Date.now();

  /** Who must forget this stream when it closes (the hub), and its channel membership. */
  owner: ConnectionOwner | null = null;
  subscription: Subscription | null = null;
  // Demo stream bookkeeping (/sse/test).
  timer: NodeJS.Timeout | null = null;
  next = 0;
  count = 0;
  intervalMs = 0;

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    route: StreamRoute,
    maxBufferedBytes: number,
  ) {
    this.req = req;
    this.res = res;
    this.socket = req.socket;
    this.route = route;
    this.ip = req.socket.remoteAddress ?? 'unknown';
    this.maxBufferedBytes = maxBufferedBytes;
    this.closeAfterEnd = wantsClose(req);
    this.raw =
      req.httpVersionMajor === 1 &&
      req.httpVersionMinor === 1 &&
      req.method !== 'HEAD' &&
      res.socket === req.socket;
  }

  /**
   * Sends the status line and headers together with the first bytes (one chunk made of `parts`,
   * written without copying them), so that they leave in one write.
   */
  open(headers: OutgoingHttpHeaders, parts: readonly Buffer[] = []): void {
    const { res, socket } = this;
    this.opened = true;
    socket.setNoDelay(true);
    res.writeHead(200, headers);
    let total = 0;
    for (const p of parts) total += p.length;
    if (this.raw) {
      socket.cork();
      res.flushHeaders();
      if (total > 0) {
        socket.write(`${total.toString(16)}\r\n`, 'latin1');
        for (const p of parts) socket.write(p);
        socket.write('\r\n', 'latin1');
      }
      socket.uncork();
    } else if (total > 0) {
      for (const p of parts) res.write(p);
    } else {
      res.flushHeaders();
    }
    this.lastWriteAt = Date.now();
  }

  /**
   * Writes one pre-framed chunk (see frameChunk). Returns false when the stream is gone or was
   * just cut off for exceeding its buffer bound.
   */
  writeChunk(chunk: Buffer): boolean {
    if (this.ended) return false;
    if (this.raw) {
      this.socket.write(chunk);
      return this.checkBound(this.socket.writableLength);
    }
    return this.writeUnframed(chunkPayload(chunk));
  }

  /** Writes an unframed payload (framing it first when the socket takes raw chunks). */
  write(payload: Buffer): boolean {
    if (this.ended) return false;
    if (this.raw) return this.writeChunk(frameChunk(payload));
    return this.writeUnframed(payload);
  }

  private writeUnframed(payload: Buffer): boolean {
    this.res.write(payload);
    return this.checkBound(this.res.writableLength + this.socket.writableLength);
  }

  private checkBound(queued: number): boolean {
    if (queued <= this.maxBufferedBytes) return true;
    this.destroy('slow_consumer');
    return false;
  }

  /** Ends the response cleanly (the chunked terminator), after an optional last payload. */
  end(last?: Buffer, reason: CloseReason = 'complete'): void {
    if (this.ended) return;
    if (last !== undefined && last.length > 0) this.write(last);
    if (this.ended) return; // cut off by the write above
    this.ended = true;
    this.closeReason = reason;
    if (!this.closeAfterEnd) this.res.end();
    else if (this.raw) {
      this.res.end();
      this.socket.end();
    } else {
      // A queued (pipelined) response: its bytes reach the socket later, so close after them.
      const socket = this.socket;
      this.res.end(() => socket.end());
    }
  }

  /** Drops the connection at once (no terminator): slow consumers and forced shutdown. */
  destroy(reason: CloseReason): void {
    if (this.ended && this.socket.destroyed) return;
    this.ended = true;
    this.closeReason = reason;
    this.socket.destroy();
  }
}
