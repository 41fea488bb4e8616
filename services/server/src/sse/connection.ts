// One open event stream: its transport, its bounds, and its own state (opened, ended and why,
// when it last wrote, what it sent, what the stall rule saw). Holds no closures and no timers of
// its own on the fan-out path; whatever it carries (a channel subscription, the example's
// progress) is its one owner, told once when the stream closes.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { CloseReason, StreamRoute } from '../stream-routes.ts';
import {
  ChunkedSocketTransport,
  ResponseTransport,
  respondWhole,
  type StreamTransport,
  wantsClose,
} from './transport.ts';

/** Why a stream ended, for logs and metrics. */
export type { CloseReason } from '../stream-routes.ts';

/** What a stream carries (a subscription, the example's progress): told once when it closes. */
export interface StreamOwner {
  streamClosed(conn: SseConnection): void;
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
  private headSent = false;
  private done = false;
  private why: CloseReason = 'client';
  /** Date.now() of the last write, for the heartbeat. */
  lastWriteAt = Date.now();
  /** SSE bytes written (framing excluded). */
  bytesSent = 0;
  /** What this stream carries; told once when it closes. */
  owner: StreamOwner | null = null;
  /** When the token that granted the stream expires (ms since the epoch); 0: never. */
  expiresAt = 0;
  /** Stall rule (see stalled()): the most bytes the client took so far, and since when not more. */
  private sentMark = 0;
  private stalledSince = 0;
  /** The last kernel scan: bytes in the socket's send queue (-1: never scanned), and acked then. */
  private kernelQueued = -1;
  private ackedAtScan = 0;
  /** The socket's inode, for the kernel scan (0: not looked up yet; -1: not found). */
  inode = 0;

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

  /** The status line and headers were written (heartbeats and ends wait for it). */
  get opened(): boolean {
    return this.headSent;
  }

  /** No more writes: the response was ended or the socket is gone. */
  get ended(): boolean {
    return this.done;
  }

  get closeReason(): CloseReason {
    return this.why;
  }

  /**
   * Sends the status line and headers together with the first bytes (one chunk made of `parts`,
   * written without copying them), so that they leave in one write.
   */
  sendHead(headers: OutgoingHttpHeaders, parts: readonly Buffer[] = []): void {
    this.headSent = true;
    this.socket.setNoDelay(true);
    this.transport.sendHead(headers, parts);
    this.wrote(parts);
  }

  /** A whole stream in one write (headers, every event, the end): the example's short streams. */
  respondWhole(headers: OutgoingHttpHeaders, body: Buffer): void {
    this.headSent = true;
    this.done = true;
    this.why = 'complete';
    respondWhole(this.res, headers, body, this.closeAfterEnd);
    this.bytesSent += body.length;
  }

  /**
   * Writes one payload of SSE bytes (`framed`: the same bytes as a ready HTTP/1.1 chunk, shared by
   * every subscriber of a fan-out). Returns false when the stream is gone or was just cut off for
   * exceeding its buffer bound (a slow consumer).
   */
  send(payload: Buffer, framed?: Buffer): boolean {
    if (this.done) return false;
    const waiting = this.transport.sendChunk(payload, framed);
    this.lastWriteAt = Date.now();
    this.bytesSent += payload.length;
    if (waiting <= this.maxBufferedBytes) return true;
    this.destroy('slow_consumer');
    return false;
  }

  /** Several payloads in one write (a replay page). False when the stream is gone or was cut. */
  sendParts(parts: readonly Buffer[]): boolean {
    if (this.done) return false;
    const waiting = this.transport.sendParts(parts);
    this.wrote(parts);
    if (waiting <= this.maxBufferedBytes) return true;
    this.destroy('slow_consumer');
    return false;
  }

  private wrote(parts: readonly Buffer[]): void {
    this.lastWriteAt = Date.now();
    for (const p of parts) this.bytesSent += p.length;
  }

  /**
   * The stall rule: true when bytes have been waiting (in the process, or in the kernel's send
   * buffer as the last kernel scan saw it) and the client took none of them for `stallMs` (a
   * client that stopped reading). Progress is the highest count of bytes the client is known to
   * have taken: acknowledged by its TCP stack per the kernel scan, or, without one, handed to the
   * kernel. Checked once per tick of the stream watch.
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
    if (this.done) return;
    if (last !== undefined && last.length > 0) this.send(last);
    if (this.done) return; // cut off by the write above
    this.done = true;
    this.why = reason;
    this.transport.end(this.closeAfterEnd);
  }

  /** Drops the connection at once (no terminator): slow consumers and forced shutdown. */
  destroy(reason: CloseReason): void {
    if (this.done && this.socket.destroyed) return;
    this.done = true;
    this.why = reason;
    this.socket.destroy();
  }

  /** The response has closed (whatever the cause): no more writes; the owner forgets it. */
  closed(): void {
    this.done = true;
    const owner = this.owner;
    this.owner = null;
    owner?.streamClosed(this);
  }
}
