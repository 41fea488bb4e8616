// Every open stream of the server: admission limits, one heartbeat timer for all streams, close
// bookkeeping and the graceful end of all streams at shutdown.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RejectReason, ServerMetrics } from '../metrics.ts';
import { encodeRetry, frameChunk, HEARTBEAT } from '../wire/encode.ts';
import type { SseConnection, StreamRoute } from './connection.ts';
import { kernelQueuesAvailable, readSendQueues, socketInode } from './kernel-queues.ts';

export interface RegistryOptions {
  maxConnections: number;
  /** 0: no per-address limit. */
  maxConnectionsPerIp: number;
  heartbeatMs: number;
  /** A stream whose pending bytes have not moved for this long is cut as a slow consumer. */
  stallTimeoutMs: number;
}

const kConnection = Symbol('sse.connection');
const kRegistry = Symbol('sse.registry');
type TaggedResponse = ServerResponse & {
  [kConnection]?: SseConnection;
  [kRegistry]?: ConnectionRegistry;
};

const HEARTBEAT_CHUNK = frameChunk(HEARTBEAT);

/** Why admit() refuses a new stream: capacity (in all, per address) or shutdown. */
export type RefusalReason =
  | Extract<RejectReason, 'max_connections' | 'per_ip_limit'>
  | 'shutting_down';

export class ConnectionRegistry {
  readonly connections = new Set<SseConnection>();
  private readonly perIp = new Map<string, number>();
  private readonly perRoute: Record<StreamRoute, number> = {
    '/sse/test': 0,
    '/sse/channels/:channel': 0,
  };
  private readonly options: RegistryOptions;
  private readonly metrics: ServerMetrics;
  private readonly logger: Logger;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Kernel send-queue scans (Linux): how often, when the last began, whether one is under way. */
  private readonly kernelScanMs: number;
  private readonly kernelScans = kernelQueuesAvailable();
  private lastKernelScan = 0;
  private scanning = false;
  /** Set at shutdown: new streams are refused. */
  draining = false;

  constructor(options: RegistryOptions, logger: Logger, metrics: ServerMetrics) {
    this.options = options;
    this.logger = logger;
    this.metrics = metrics;
    this.kernelScanMs = Math.max(250, Math.min(2000, Math.floor(options.stallTimeoutMs / 4)));
  }

  get size(): number {
    return this.connections.size;
  }

  countByRoute(route: StreamRoute): number {
    return this.perRoute[route];
  }

  /** Why a new stream from `ip` must be refused, or null when it may open. */
  admit(ip: string): RefusalReason | null {
    if (this.draining) return 'shutting_down';
    if (this.connections.size >= this.options.maxConnections) return 'max_connections';
    const limit = this.options.maxConnectionsPerIp;
    if (limit > 0 && (this.perIp.get(ip) ?? 0) >= limit) return 'per_ip_limit';
    return null;
  }

  /** Starts tracking an opened stream; it is forgotten when its response closes. */
  add(conn: SseConnection): void {
    this.connections.add(conn);
    this.perIp.set(conn.ip, (this.perIp.get(conn.ip) ?? 0) + 1);
    this.perRoute[conn.route]++;
    const res = conn.res as TaggedResponse;
    res[kConnection] = conn;
    res[kRegistry] = this;
    conn.res.once('close', onResponseClose);
    if (this.kernelScans) conn.inode = socketInode(conn.socket);
    this.metrics.opened[conn.route].inc();
    if (!this.heartbeatTimer) this.startHeartbeat();
  }

  /** Called once when a stream's response has closed. */
  remove(conn: SseConnection): void {
    if (!this.connections.delete(conn)) return;
    const n = (this.perIp.get(conn.ip) ?? 1) - 1;
    if (n === 0) this.perIp.delete(conn.ip);
    else this.perIp.set(conn.ip, n);
    this.perRoute[conn.route]--;
    conn.demo?.stop();
    conn.ended = true;
    conn.owner?.detach(conn);
    conn.owner = null;
    const metrics = this.metrics;
    metrics.durations[conn.route].observe((performance.now() - conn.openedAt) / 1000);
    if (conn.closeReason === 'slow_consumer') {
      metrics.slowConsumerDisconnects.inc();
      this.logger.warn(
        { event: 'slow_consumer', route: conn.route, ip: conn.ip },
        'subscriber exceeded limits.maxBufferedBytes or stopped reading and was disconnected',
      );
    }
    if (this.connections.size === 0) this.stopHeartbeat();
  }

  private startHeartbeat(): void {
    const every = Math.max(5, Math.min(1000, Math.floor(this.options.heartbeatMs / 2)));
    this.heartbeatTimer = setInterval(heartbeatTick, every, this);
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /**
   * Writes the heartbeat comment to every stream idle for heartbeatMs or longer, and cuts every
   * stream that stalled (see SseConnection.stalled) as a slow consumer.
   */
  heartbeat(now = Date.now()): void {
    if (this.kernelScans && !this.scanning && now - this.lastKernelScan >= this.kernelScanMs) {
      this.lastKernelScan = now;
      void this.scanKernelQueues();
    }
    const idleSince = now - this.options.heartbeatMs;
    const stallMs = this.options.stallTimeoutMs;
    let sent = 0;
    for (const conn of this.connections) {
      if (conn.stalled(now, stallMs)) {
        conn.destroy('slow_consumer');
        continue;
      }
      if (conn.lastWriteAt > idleSince || conn.ended || !conn.opened) continue;
      if (conn.send(HEARTBEAT, HEARTBEAT_CHUNK)) {
        conn.lastWriteAt = now;
        sent++;
      }
    }
    if (sent > 0) {
      this.metrics.heartbeatsSent.inc(sent);
      this.metrics.bytesSent.inc(sent * HEARTBEAT.length);
    }
  }

  /**
   * Reads what the kernel holds of every stream (see kernel-queues.ts) for the stall rule. The
   * bytes each stream had handed to the kernel are taken before the read, so bytes written while
   * it runs can only make a stream look slower, never make a stalled one look alive.
   */
  private async scanKernelQueues(): Promise<void> {
    this.scanning = true;
    const handed = new Map<SseConnection, number>();
    for (const conn of this.connections) {
      if (conn.inode > 0 && !conn.ended) handed.set(conn, conn.handedToKernel());
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
    }
  }

  /**
   * Ends every open stream cleanly after a `retry:` line whose delay is spread over
   * [retryMs, retryMs + jitterMs], so clients do not all come back in the same millisecond.
   */
  endAll(retryMs: number, jitterMs: number): number {
    this.draining = true;
    let ended = 0;
    for (const conn of this.connections) {
      if (conn.ended) continue;
      if (!conn.opened) {
        // Still joining (waiting for the broker's replay): nothing was sent, nothing to end.
        conn.destroy('shutdown');
        continue;
      }
      const retry = Buffer.from(encodeRetry(retryMs + Math.random() * jitterMs));
      conn.end(retry, 'shutdown');
      this.metrics.bytesSent.inc(retry.length);
      ended++;
    }
    this.stopHeartbeat();
    return ended;
  }

  /** Drops whatever is still open (after the shutdown deadline). */
  destroyAll(): void {
    for (const conn of this.connections) conn.destroy('shutdown');
  }
}

function onResponseClose(this: TaggedResponse): void {
  const conn = this[kConnection];
  if (conn) this[kRegistry]?.remove(conn);
}

function heartbeatTick(registry: ConnectionRegistry): void {
  registry.heartbeat();
}
