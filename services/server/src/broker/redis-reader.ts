// Live delivery for the Redis broker: one dedicated connection per replica loops on
//   XREAD BLOCK <ms> COUNT <n> STREAMS <every joined stream> <its cursor>
// and hands each batch to the hub. A cursor is the last id delivered for its stream, so after a
// Redis outage the loop resumes exactly where it stopped.
//
// Every entry carries its sequence number in the channel (field n, see redis-scripts.ts), so the
// reader knows when entries it never read were trimmed away (the first entry it reads is not the
// one after its cursor): it hands the hub a gap, which becomes an `event: reset` for the live
// subscribers before the later events. A sequence that starts again (the stream expired and was
// made anew, or Redis lost it) is a gap too, unless the reader stayed connected since it last
// delivered on that channel (then it read every entry the old stream had).
//
// A key that holds another type fails XREAD for every stream in the call: the reader finds the
// culprit, stops reading it and reports the channel, and the others keep flowing.
import type { Redis } from 'ioredis';
import { compareIds, type EventId, formatEventId, parseEventId } from './event-id.ts';
import { reconnectDelay } from './redis-connection.ts';

/** An XRANGE/XREAD entry: [id, [field, value, ...]]. */
export type StreamEntry = [string, string[]];

/** Entries lost before `after` was followed by the first delivered entry. */
export interface Gap {
  /** The last id this replica delivered on the channel before the gap. */
  readonly after: string;
}

export interface ReaderEvents {
  deliver(channel: string, entries: StreamEntry[], gap: Gap | null): void;
  /** The channel's key holds another type: it is no longer read. */
  fault(channel: string, why: string): void;
  /** A failed read (counted in sse_broker_errors_total{op="read"}). */
  error(): void;
}

export const BLOCK_MS = 1000;
const COUNT = 1000;

interface Cursor {
  /** The last id delivered. */
  id: string;
  /** Its sequence number in the channel (entries-added when joined); null when unknown. */
  n: number | null;
  /** The reader's connection epoch when `n` was last confirmed. */
  epoch: number;
}

/** The n field of an entry, or null (entries written before sequence numbers). */
function entrySeq(entry: StreamEntry): number | null {
  const fields = entry[1];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'n') {
      const n = Number(fields[i + 1]);
      return Number.isSafeInteger(n) ? n : null;
    }
  }
  return null;
}

export class RedisReader {
  readonly conn: Redis;
  private readonly control: Redis;
  private readonly prefix: string;
  private readonly on: ReaderEvents;
  private readonly cursors = new Map<string, Cursor>();
  private running = false;
  private loop: Promise<void> | null = null;
  private clientId: number | null = null;
  /** Bumped on every connection close: a cursor confirmed in an older epoch may have missed a loss. */
  private epoch = 0;
  private checkedEpoch = 0;
  /** Bumped on every join; a read started before the latest bump is woken. */
  private generation = 0;
  private readingGeneration = -1;
  private wake: (() => void) | null = null;
  /** Date.now() when the XREAD under way was sent; 0 when none is (for the health check). */
  busySince = 0;

  constructor(conn: Redis, control: Redis, prefix: string, on: ReaderEvents) {
    this.conn = conn;
    this.control = control;
    this.prefix = prefix;
    this.on = on;
    conn.on('close', () => {
      this.clientId = null;
      this.epoch++;
    });
  }

  get size(): number {
    return this.cursors.size;
  }

  cursor(channel: string): EventId | null {
    const c = this.cursors.get(channel);
    return c === undefined ? null : parseEventId(c.id);
  }

  /** Reads the channel's stream from after `after` (whose sequence number is `n`) on. */
  add(channel: string, after: EventId, n: number | null): EventId {
    this.cursors.set(channel, { id: formatEventId(after), n, epoch: this.epoch });
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
    const cursor = this.cursors.get(channel);
    const at = cursor === undefined ? null : parseEventId(cursor.id);
    if (cursor === undefined || at === null) return;
    let from = 0;
    while (from < entries.length) {
      const id = parseEventId(entries[from]![0]);
      if (id !== null && compareIds(id, at) > 0) break;
      from++;
    }
    if (from === entries.length) return;
    const fresh = from === 0 ? entries : entries.slice(from);
    const gap = this.gapBefore(cursor, entrySeq(fresh[0]!)) ? { after: cursor.id } : null;
    const last = fresh[fresh.length - 1]!;
    cursor.id = last[0];
    cursor.n = entrySeq(last);
    cursor.epoch = this.epoch;
    this.on.deliver(channel, fresh, gap);
  }

  /** True when entries between the cursor and the next entry read (sequence `next`) were lost. */
  private gapBefore(cursor: Cursor, next: number | null): boolean {
    if (cursor.n === null || next === null) return false;
    if (next === cursor.n + 1) return false;
    if (next > cursor.n + 1) return true;
    // The sequence started again: a new stream under the key. Nothing was missed only if the
    // reader has been connected since it confirmed its cursor (it read the old stream to the end).
    return cursor.epoch !== this.epoch;
  }

  /**
   * After a reconnect: a cursor whose stream still ends where it stopped is confirmed (so a later
   * new stream under its key is no gap); the others keep their old epoch.
   */
  private async confirmCursors(): Promise<void> {
    if (this.checkedEpoch === this.epoch) return;
    const epoch = this.epoch;
    const names = [...this.cursors.keys()];
    const tx = this.conn.pipeline();
    for (const name of names) tx.call('XINFO', ['STREAM', this.prefix + name]);
    const replies = (await tx.exec()) ?? [];
    names.forEach((name, i) => {
      const [err, info] = replies[i] ?? [null, null];
      const cursor = this.cursors.get(name);
      if (err || cursor === undefined || !Array.isArray(info)) return;
      const field = (key: string) => info[info.indexOf(key) + 1];
      if (field('last-generated-id') === cursor.id && Number(field('entries-added')) === cursor.n) {
        cursor.epoch = epoch;
      }
    });
    this.checkedEpoch = epoch;
  }

  /** XREAD failed with WRONGTYPE: stops reading the keys of another type; returns how many. */
  private async isolateWrongTypes(): Promise<number> {
    const names = [...this.cursors.keys()];
    const tx = this.conn.pipeline();
    for (const name of names) tx.call('TYPE', [this.prefix + name]);
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
    for (const [channel, cursor] of this.cursors) {
      keys.push(this.prefix + channel);
      ids.push(cursor.id);
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
    for (const [key, entries] of reply) this.advance(key.slice(this.prefix.length), entries);
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
        await this.readOnce();
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        const wrongType = /^WRONGTYPE/.test((err as Error).message);
        if (wrongType && (await this.isolateWrongTypes().catch(() => 0)) > 0) continue;
        this.on.error();
        failures++;
        await new Promise((r) => setTimeout(r, reconnectDelay(failures)));
      }
    }
  }
}
