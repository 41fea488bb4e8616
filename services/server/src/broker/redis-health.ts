// Whether Redis answers, not only whether its sockets are open: a paused or wedged Redis keeps
// its TCP connections up while every command waits. Every PROBE_EVERY_MS the command connection
// sends PING (one at a time); a PING unanswered for UNRESPONSIVE_MS, or a reader XREAD outstanding
// for longer than its BLOCK time plus that, makes the broker down (readiness 503, sse_broker_up
// 0) until the next PING answers. A reader stuck far longer (a connection silently gone) is made to
// reconnect; it resumes from its cursors.
import type { Cluster, Redis } from 'ioredis';
import { BLOCK_MS, type RedisReader } from './redis-reader.ts';

const PROBE_EVERY_MS = 500;
const UNRESPONSIVE_MS = 1500;
const READER_RESET_MS = BLOCK_MS + 5000;

export class RedisHealth {
  private readonly cmd: Redis;
  private readonly reader: RedisReader;
  private readonly onChange: () => void;
  private timer: NodeJS.Timeout | null = null;
  /** Date.now() when the PING under way was sent; 0 when none is. */
  private probeSentAt = 0;
  private responsive = true;

  constructor(cmd: Redis, reader: RedisReader, onChange: () => void) {
    this.cmd = cmd;
    this.reader = reader;
    this.onChange = onChange;
  }

  /** Redis answered its last PING in time and the reader is not stuck. */
  get ok(): boolean {
    const busy = this.reader.busySince;
    return this.responsive && !(busy > 0 && Date.now() - busy > BLOCK_MS + UNRESPONSIVE_MS);
  }

  start(): void {
    this.timer ??= setInterval(healthTick, PROBE_EVERY_MS, this);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  tick(now = Date.now()): void {
    if (this.cmd.status !== 'ready') {
      this.probeSentAt = 0;
    } else if (this.probeSentAt === 0) {
      this.probeSentAt = now;
      this.cmd.ping().then(
        () => this.answered(true),
        () => this.answered(false),
      );
    } else if (now - this.probeSentAt > UNRESPONSIVE_MS) {
      this.responsive = false;
    }
    const busy = this.reader.busySince;
    if (busy > 0 && now - busy > READER_RESET_MS && this.reader.conn.status === 'ready') {
      this.reader.conn.disconnect(true);
    }
    this.onChange();
  }

  private answered(ok: boolean): void {
    this.probeSentAt = 0;
    this.responsive = ok;
    this.onChange();
  }
}

function healthTick(health: RedisHealth): void {
  health.tick();
}

/**
 * Redis Cluster: every PROBE_EVERY_MS each master the command client knows gets a PING (one at a
 * time per master). The broker is up while at least one master answers: a dead shard fails its
 * own channels' publishes and subscriptions (503), not the others', and a load balancer taking
 * every replica out of rotation for it would stop those too.
 */
export class ClusterHealth {
  private readonly cluster: Cluster;
  private readonly onChange: () => void;
  private timer: NodeJS.Timeout | null = null;
  /** Per master `host:port`: when its PING under way was sent (0: none), and whether it answered. */
  private readonly probes = new Map<string, { sentAt: number; responsive: boolean }>();

  constructor(cluster: Cluster, onChange: () => void) {
    this.cluster = cluster;
    this.onChange = onChange;
  }

  /** Some master answers (before the first probes: the client is ready, so one did). */
  get ok(): boolean {
    if (this.probes.size === 0) return true;
    for (const p of this.probes.values()) if (p.responsive) return true;
    return false;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), PROBE_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  tick(now = Date.now()): void {
    const seen = new Set<string>();
    for (const node of this.cluster.nodes('master')) {
      const key = `${node.options.host}:${node.options.port}`;
      seen.add(key);
      let probe = this.probes.get(key);
      if (probe === undefined) {
        probe = { sentAt: 0, responsive: node.status === 'ready' };
        this.probes.set(key, probe);
      }
      if (node.status !== 'ready' && node.status !== 'wait') {
        probe.responsive = false;
        probe.sentAt = 0;
      } else if (probe.sentAt === 0) {
        const p = probe;
        p.sentAt = now;
        node.ping().then(
          () => this.answered(p, true),
          () => this.answered(p, false),
        );
      } else if (now - probe.sentAt > UNRESPONSIVE_MS) {
        probe.responsive = false;
      }
    }
    for (const key of this.probes.keys()) if (!seen.has(key)) this.probes.delete(key);
    this.onChange();
  }

  private answered(probe: { sentAt: number; responsive: boolean }, ok: boolean): void {
    probe.sentAt = 0;
    probe.responsive = ok;
    this.onChange();
  }
}
