// Live delivery for the Redis broker on one server or Sentinel: one dedicated connection per
// replica loops on
//   XREAD BLOCK <ms> COUNT <n> STREAMS <every joined stream> <its cursor>
// and hands each batch to the hub. A cursor is the last id delivered for its stream, so after a
// Redis outage the loop resumes exactly where it stopped.
//
// Gaps (entries trimmed or lost before this replica read them) are found by the entries' sequence
// numbers (redis-cursors.ts) and become an `event: reset` for the live subscribers before the later
// events. After a failover (Sentinel) the connection follows the new master by itself and the loop
// resumes from its cursors there: entries the new master lacks show as a sequence that restarted.
//
// A key that holds another type fails XREAD for every stream in the call: the reader finds the
// culprit, stops reading it and reports the channel, and the others keep flowing.
import type { Redis } from 'ioredis';
import type { EventId } from './event-id.ts';
import { endConnection, masterConfirmed } from './redis-connection.ts';
import { Cursors, type LiveReader, type ReaderEvents, type StreamEntry } from './redis-cursors.ts';
import type { RedisKeys } from './redis-keys.ts';

export const BLOCK_MS = 1000;
const COUNT = 1000;

export class RedisReader implements LiveReader {
  readonly conn: Redis;
  private readonly control: Redis;
  private readonly keys: RedisKeys;
  private readonly on: ReaderEvents;
  private readonly backoff: (failures: number) => number;
  private readonly cursors = new Cursors();
  private running = false;
  private loop: Promise<void> | null = null;
  private clientId: number | null = null;
  private checkedEpoch = 0;
  /** Bumped on every join; a read started before the latest bump is woken. */
  private generation = 0;
  private readingGeneration = -1;
  private wake: (() => void) | null = null;
  /** Date.now() when the XREAD under way was sent; 0 when none is (for the health check). */
  busySince = 0;

  constructor(
    conn: Redis,
    control: Redis,
    keys: RedisKeys,
    on: ReaderEvents,
    backoff: (failures: number) => number,
  ) {
    this.conn = conn;
    this.control = control;
    this.keys = keys;
    this.on = on;
    this.backoff = backoff;
    conn.on('close', () => {
      this.clientId = null;
      this.cursors.epoch++;
    });
  }

  get size(): number {
    return this.cursors.size;
  }

  cursor(channel: string): EventId | null {
    return this.cursors.cursor(channel);
  }

  add(channel: string, after: EventId, n: number | null): EventId {
    this.cursors.set(channel, after, n);
    this.generation++;
    this.kick();
    return after;
  }

  remove(channel: string): void {
    this.cursors.delete(channel);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    endConnection(this.conn);
    await this.loop;
  }

  /** Wakes the loop: from its idle wait, or from a blocked XREAD that lacks a new stream. */
  private kick(): void {
    if (this.wake) {
      this.wake();
      return;
    }
    void this.unblock(0);
  }

  private async unblock(attempt: number): Promise<void> {
    if (!this.running || this.readingGeneration >= this.generation) return;
    const id = this.clientId;
    if (id !== null && this.control.status === 'ready') {
      const n = await this.control.call('CLIENT', ['UNBLOCK', id]).catch(() => 0);
      if (n === 1) return;
    }
    // Not blocked yet (the read is on its way) or not connected: try again shortly.
    if (attempt < 50) setTimeout(() => void this.unblock(attempt + 1), 10).unref();
  }

  /**
   * After a reconnect: a cursor whose stream still ends where it stopped is confirmed (so a later
   * new stream under its key is no gap); the others keep their old epoch.
   */
  private async confirmCursors(): Promise<void> {
    const epoch = this.cursors.epoch;
    if (this.checkedEpoch === epoch) return;
    const names = [...this.cursors.channels()];
    const tx = this.conn.pipeline();
    for (const name of names) tx.call('XINFO', ['STREAM', this.keys.stream(name)]);
    const replies = (await tx.exec()) ?? [];
    names.forEach((name, i) => {
      const [err, info] = replies[i] ?? [null, null];
      if (!err) this.cursors.confirm(name, info, epoch);
    });
    this.checkedEpoch = epoch;
  }

  /** XREAD failed with WRONGTYPE: stops reading the keys of another type; returns how many. */
  private async isolateWrongTypes(): Promise<number> {
    const names = [...this.cursors.channels()];
    const tx = this.conn.pipeline();
    for (const name of names) tx.call('TYPE', [this.keys.stream(name)]);
    const replies = (await tx.exec()) ?? [];
    let found = 0;
    names.forEach((name, i) => {
      const type = replies[i]?.[1];
      if (typeof type === 'string' && type !== 'stream' && type !== 'none') {
        this.cursors.delete(name);
        this.on.fault(name, `its Redis key holds a ${type}, not a stream`);
        found++;
      }
    });
    return found;
  }

  private async readOnce(): Promise<void> {
    if (this.clientId === null) this.clientId = Number(await this.conn.call('CLIENT', ['ID']));
    await this.confirmCursors();
    const keys: string[] = [];
    const ids: string[] = [];
    for (const channel of this.cursors.channels()) {
      keys.push(this.keys.stream(channel));
      ids.push(this.cursors.idOf(channel)!);
    }
    if (keys.length === 0) return;
    this.readingGeneration = this.generation;
    this.busySince = Date.now();
    let reply: [string, StreamEntry[]][] | null;
    try {
      reply = (await this.conn.call('XREAD', [
        'BLOCK',
        BLOCK_MS,
        'COUNT',
        COUNT,
        'STREAMS',
        ...keys,
        ...ids,
      ])) as [string, StreamEntry[]][] | null;
    } finally {
      this.busySince = 0;
    }
    if (reply === null) return;
    for (const [key, entries] of reply) {
      const channel = this.keys.channelOf(key);
      if (channel !== null) this.cursors.advance(channel, entries, this.on.deliver);
    }
  }

  /** Waits `ms`, or less when the connection turns ready meanwhile (a failover completed). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.conn.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.conn.on('ready', done);
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      if (this.cursors.size === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
        continue;
      }
      if (this.conn.status === 'ready' && !masterConfirmed(this.conn)) {
        // Sentinel: not yet known to be the master the sentinels agree on (it may be the old one).
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      try {
        await this.readOnce();
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        const wrongType = /^WRONGTYPE/.test((err as Error).message);
        if (wrongType && (await this.isolateWrongTypes().catch(() => 0)) > 0) continue;
        this.on.error();
        failures++;
        await this.pause(this.conn.status === 'ready' ? this.backoff(failures) : 5000);
      }
    }
  }
}
