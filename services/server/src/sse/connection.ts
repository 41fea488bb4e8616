// One open event stream. Holds no closures and no timers of its own on the fan-out path: the hub
// and the registry keep their per-connection state in plain fields here.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { DemoProgress } from './demo-progress.ts';
import type { Subscription } from './subscription.ts';
import { ChunkedSocketTransport, ResponseTransport, type StreamTransport } from './transport.ts';

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
  /** The client address (behind a trusted proxy: from X-Forwarded-For), for limits and logs. */
  readonly ip: string;
  readonly openedAt = performance.now();
  /** Where the bytes go: chunks straight to the socket (HTTP/1.1), or through the response. */
  readonly transport: StreamTransport;
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
  /** Stall rule (see the registry): bytes handed to the kernel when last seen, and since when. */
  sentMark = 0;
  stalledSince = 0;

  /** Who must forget this stream when it closes (the hub), and its channel membership. */
  owner: ConnectionOwner | null = null;
  subscription: Subscription | null = null;
  /** The example stream's progress (/sse/test only). */
  demo: DemoProgress | null = null;

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    route: StreamRoute,
    maxBufferedBytes: number,
    ip: string,
  ) {
    this.req = req;
    this.res = res;
    this.socket = req.socket;
    this.route = route;
    this.ip = ip;
    this.maxBufferedBytes = maxBufferedBytes;
    this.closeAfterEnd = wantsClose(req);
    const ownsSocket =
      req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && res.socket === req.socket;
    this.transport = ownsSocket
      ? new ChunkedSocketTransport(res, this.socket)
      : new ResponseTransport(res, this.socket);
  }

  /**
   * Sends the status line and headers together with the first bytes (one chunk made of `parts`,
   * written without copying them), so that they leave in one write.
   */
  open(headers: OutgoingHttpHeaders, parts: readonly Buffer[] = []): void {
    this.opened = true;
    this.socket.setNoDelay(true);
    this.transport.sendHead(headers, parts);
    this.lastWriteAt = Date.now();
  }

  /**
   * Writes one payload of SSE bytes (`framed`: the same bytes as a ready HTTP/1.1 chunk, shared by
   * every subscriber of a fan-out). Returns false when the stream is gone or was just cut off for
   * exceeding its buffer bound (a slow consumer).
   */
  send(payload: Buffer, framed?: Buffer): boolean {
    if (this.ended) return false;
    if (this.transport.sendChunk(payload, framed) <= this.maxBufferedBytes) return true;
    this.destroy('slow_consumer');
    return false;
  }

  /**
   * The stall rule: true when bytes have been waiting and none of them reached the kernel for
   * `stallMs` (a client that stopped reading). Checked once per registry tick.
   */
  stalled(now: number, stallMs: number): boolean {
    if (this.transport.pending() === 0) {
      this.stalledSince = 0;
      return false;
    }
    const socket = this.socket;
    const sent = (socket.bytesWritten ?? 0) - socket.writableLength;
    if (this.stalledSince === 0 || sent !== this.sentMark) {
      this.sentMark = sent;
      this.stalledSince = now;
      return false;
    }
    return now - this.stalledSince >= stallMs;
  }

  /** Ends the response cleanly (the chunked terminator), after an optional last payload. */
  end(last?: Buffer, reason: CloseReason = 'complete'): void {
    if (this.ended) return;
    if (last !== undefined && last.length > 0) this.send(last);
    if (this.ended) return; // cut off by the write above
    this.ended = true;
    this.closeReason = reason;
    this.transport.end(this.closeAfterEnd);
  }

  /** Drops the connection at once (no terminator): slow consumers and forced shutdown. */
  destroy(reason: CloseReason): void {
    if (this.ended && this.socket.destroyed) return;
    this.ended = true;
    this.closeReason = reason;
    this.socket.destroy();
  }
}
