// One timer for every open stream (running only while there are streams): heartbeats to idle
// streams, the stall rule, and, on Linux, the kernel scan the stall rule reads. No timer per
// stream.
import type { Logger } from 'pino';
import type { ServerMetrics } from '../metrics.ts';
import { encodeNotice, frameChunk, HEARTBEAT } from '../wire/encode.ts';
import type { SseConnection } from './connection.ts';
import { kernelQueuesAvailable, readSendQueues, socketInode } from './kernel-queues.ts';

export interface WatchOptions {
  heartbeatMs: number;
  /** The reconnection delay sent with `event: reauth` when a stream's token expires. */
  retryMs: number;
  /** A stream whose client took none of its bytes for this long is cut as a slow consumer. */
  stallTimeoutMs: number;
}

const HEARTBEAT_CHUNK = frameChunk(HEARTBEAT);
const REAUTH = { reason: 'token_expired' };

export class StreamWatch {
  private readonly streams: ReadonlySet<SseConnection>;
  private readonly options: WatchOptions;
  private readonly metrics: ServerMetrics;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  /** `retry:` and `event: reauth`, the last bytes of a stream whose token expired. */
  private readonly reauth: Buffer;
  /** Kernel send-queue scans (Linux): how often, when the last began, whether one is under way. */
  private readonly kernelScanMs: number;
  private readonly kernelScans: boolean;
  private lastKernelScan = 0;
  /** The earliest time of the next scan: kernelScanMs after the last, or 20 times its length. */
  private nextKernelScan = 0;
  private scanning = false;

  constructor(
    streams: ReadonlySet<SseConnection>,
    options: WatchOptions,
    metrics: ServerMetrics,
    logger: Logger,
    kernelScans = kernelQueuesAvailable(),
  ) {
    this.streams = streams;
    this.options = options;
    this.metrics = metrics;
    this.logger = logger;
    this.kernelScans = kernelScans;
    this.kernelScanMs = Math.max(250, Math.min(2000, Math.floor(options.stallTimeoutMs / 4)));
    this.reauth = Buffer.from(encodeNotice('reauth', REAUTH, options.retryMs));
  }

  /** A stream opened: the timer runs (the kernel scan finds the stream by its socket's inode). */
  streamOpened(): void {
    if (this.timer === null) {
      const every = Math.max(5, Math.min(1000, Math.floor(this.options.heartbeatMs / 2)));
      this.timer = setInterval(watchTick, every, this);
      this.timer.unref();
    }
  }

  /** No streams left (or shutdown): the timer stops. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Writes the heartbeat comment to every stream idle for heartbeatMs or longer, cuts every
   * stream that stalled (see SseConnection.stalled) as a slow consumer, and ends every stream whose
   * token expired with `event: reauth` (the page reconnects with a fresh token).
   */
  tick(now = Date.now()): void {
    if (this.kernelScans && !this.scanning && now >= this.nextKernelScan) {
      this.lastKernelScan = now;
      this.nextKernelScan = now + this.kernelScanMs;
      void this.scanKernelQueues();
    }
    const idleSince = now - this.options.heartbeatMs;
    const stallMs = this.options.stallTimeoutMs;
    let sent = 0;
    let expired = 0;
    for (const conn of this.streams) {
      if (conn.stalled(now, stallMs)) {
        conn.destroy('slow_consumer');
        continue;
      }
      if (conn.expiresAt > 0 && now >= conn.expiresAt && !conn.ended && conn.opened) {
        conn.end(this.reauth, 'token_expired');
        expired++;
        continue;
      }
      if (conn.lastWriteAt > idleSince || conn.ended || !conn.opened) continue;
      if (conn.send(HEARTBEAT, HEARTBEAT_CHUNK)) sent++;
    }
    if (sent > 0) {
      this.metrics.heartbeatsSent.inc(sent);
      this.metrics.bytesSent.inc(sent * HEARTBEAT.length);
    }
    if (expired > 0) this.metrics.bytesSent.inc(expired * this.reauth.length);
  }

  /**
   * Reads what the kernel holds of every stream (see kernel-queues.ts) for the stall rule. The
   * bytes each stream had handed to the kernel are taken before the read, so bytes written while
   * it runs can only make a stream look slower, never make a stalled one look alive.
   */
  private async scanKernelQueues(): Promise<void> {
    this.scanning = true;
    const started = performance.now();
    const handed = new Map<SseConnection, number>();
    for (const conn of this.streams) {
      if (conn.ended) continue;
      // Looked up here, not when the stream opens: a storm's streams open by the thousand a
      // second, and many are served and gone before the next scan.
      if (conn.inode === 0) conn.inode = socketInode(conn.socket) || -1;
      if (conn.inode > 0) handed.set(conn, conn.handedToKernel());
    }
    try {
      const queues = await readSendQueues();
      for (const [conn, before] of handed) {
        if (!conn.ended) conn.kernelScanned(before, queues.get(conn.inode) ?? 0);
      }
    } catch (err) {
      this.logger.warn({ event: 'kernel_scan_failed', err }, 'reading socket send queues failed');
    } finally {
      this.scanning = false;
      // The table lists every TCP socket of the host's network namespace: with tens of thousands
      // a scan takes ~100-200 ms of CPU (a 10,000-client storm on loopback, both ends listed),
      // so scans are spaced to at most ~5 % of the time they take.
      const took = performance.now() - started;
      this.nextKernelScan = Math.max(
        this.nextKernelScan,
        this.lastKernelScan + SCAN_SPACING * took,
      );
    }
  }
}

/** A kernel scan that took d ms is followed by the next no sooner than SCAN_SPACING * d later. */
const SCAN_SPACING = 20;

function watchTick(watch: StreamWatch): void {
  watch.tick();
}
