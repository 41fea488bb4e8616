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
  /** Stall rule (see stalled()): the most bytes the client took so far, and since when not more. */
  sentMark = 0;
  stalledSince = 0;
  /** The last kernel scan: bytes in the socket's send queue (-1: never scanned), and acked then. */
  kernelQueued = -1;
  ackedAtScan = 0;
  /** The socket's inode, for the kernel scan (0: unknown). */
  inode = 0;

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

  /** Several payloads in one write (a replay page). False when the stream is gone or was cut. */
  sendParts(parts: readonly Buffer[]): boolean {
    if (this.ended) return false;
    if (this.transport.sendParts(parts) <= this.maxBufferedBytes) return true;
    this.destroy('slow_consumer');
    return false;
  }

  /**
   * The stall rule: true when bytes have been waiting (in the process, or in the kernel's send
   * buffer as the last kernel scan saw it) and the client took none of them for `stallMs` (a
   * client that stopped reading). Progress is the highest count of bytes the client is known to
   * have taken: acknowledged by its TCP stack per the kernel scan, or, without one, handed to the
   * kernel. Checked once per registry tick.
   */
  stalled(now: number, stallMs: number): boolean {
    const pending = this.transport.pending();
    if (pending === 0 && this.kernelQueued <= 0) {
      this.stalledSince = 0;
      return false;
    }
    const progress = this.kernelQueued < 0 ? this.handedToKernel() : this.ackedAtScan;
    if (this.stalledSince === 0 || progress > this.sentMark) {
      this.sentMark = Math.max(this.sentMark, progress);
      this.stalledSince = now;
      return false;
    }
    return now - this.stalledSince >= stallMs;
  }

  /** Bytes of this stream the process handed to the kernel so far. */
  handedToKernel(): number {
    return (this.socket.bytesWritten ?? 0) - this.socket.writableLength;
  }

  /** A kernel scan's finding: `queued` bytes unacknowledged of the `handed` before it began. */
  kernelScanned(handed: number, queued: number): void {
    this.kernelQueued = queued;
    this.ackedAtScan = handed - queued;
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
