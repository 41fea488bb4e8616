// Live delivery for the Redis broker: one dedicated connection per replica loops on
//   XREAD BLOCK <ms> COUNT <n> STREAMS <every joined stream> <its cursor>
// and hands each batch to the hub. A cursor is the last id delivered for its stream, so after a
// Redis outage the loop resumes exactly where it stopped: nothing acknowledged is lost or repeated.
// Joining a channel wakes a blocked read (CLIENT UNBLOCK from the command connection) so the new
// stream is read at once.
import type { Redis } from 'ioredis';
import { compareIds, type EventId, formatEventId, parseEventId } from './event-id.ts';
import { reconnectDelay } from './redis-connection.ts';

/** An XRANGE/XREAD entry: [id, [field, value, ...]]. */
export type StreamEntry = [string, string[]];

const BLOCK_MS = 2000;
const COUNT = 1000;

export class RedisReader {
  readonly conn: Redis;
  private readonly control: Redis;
  private readonly prefix: string;
  private readonly deliver: (channel: string, entries: StreamEntry[]) => void;
  private readonly onError: () => void;
  private readonly cursors = new Map<string, string>();
  private running = false;
  private loop: Promise<void> | null = null;
  private clientId: number | null = null;
  /** Bumped on every join; a read started before the latest bump is woken. */
  private generation = 0;
  private readingGeneration = -1;
  private wake: (() => void) | null = null;

  constructor(
    conn: Redis,
    control: Redis,
    prefix: string,
    deliver: (channel: string, entries: StreamEntry[]) => void,
    onError: () => void,
  ) {
    this.conn = conn;
    this.control = control;
    this.prefix = prefix;
    this.deliver = deliver;
    this.onError = onError;
    conn.on('close', () => {
      this.clientId = null;
    });
  }

  get size(): number {
    return this.cursors.size;
  }

  cursor(channel: string): EventId | null {
    const c = this.cursors.get(channel);
    return c === undefined ? null : parseEventId(c);
  }

  /** Reads the channel's stream from after `after` on; returns `after`. */
  add(channel: string, after: EventId): EventId {
    this.cursors.set(channel, formatEventId(after));
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
    this.conn.disconnect();
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
   * Delivers the entries after the channel's cursor and moves the cursor to the last one. The
   * cursor may have changed while the read was under way (the channel was left, or left and
   * joined again from a newer id): entries at or before it are not delivered twice.
   */
  private advance(channel: string, entries: StreamEntry[]): void {
    const text = this.cursors.get(channel);
    const cursor = text === undefined ? null : parseEventId(text);
    if (cursor === null) return;
    let from = 0;
    while (from < entries.length) {
      const id = parseEventId(entries[from]![0]);
      if (id !== null && compareIds(id, cursor) > 0) break;
      from++;
    }
    if (from === entries.length) return;
    const fresh = from === 0 ? entries : entries.slice(from);
    this.cursors.set(channel, fresh[fresh.length - 1]![0]);
    this.deliver(channel, fresh);
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
      try {
        if (this.clientId === null) this.clientId = Number(await this.conn.call('CLIENT', ['ID']));
        const keys: string[] = [];
        const ids: string[] = [];
        for (const [channel, id] of this.cursors) {
          keys.push(this.prefix + channel);
          ids.push(id);
        }
        this.readingGeneration = this.generation;
        const reply = (await this.conn.call('XREAD', [
          'BLOCK',
          BLOCK_MS,
          'COUNT',
          COUNT,
          'STREAMS',
          ...keys,
          ...ids,
        ])) as [string, StreamEntry[]][] | null;
        failures = 0;
        if (reply === null) continue;
        for (const [key, entries] of reply) this.advance(key.slice(this.prefix.length), entries);
      } catch {
        if (!this.running) break;
        this.onError();
        failures++;
        await new Promise((r) => setTimeout(r, reconnectDelay(failures)));
      }
    }
  }
}
