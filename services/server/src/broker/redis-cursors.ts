// The live readers' cursors (redis-reader.ts for one server or Sentinel, redis-cluster-reader.ts
// for Redis Cluster): per joined channel, the last id delivered and its sequence number in the
// channel (the entry's field n, see redis-scripts.ts).
//
// From the sequence numbers a reader knows when entries it never read are gone: the first entry
// it reads next is not the one after its cursor (trimmed before it read them: a gap), or the
// sequence started again (the stream expired and was made anew, or Redis lost it: a restarted
// Redis, or a failover to a replica that had not received the last entries). A restart is a gap
// too, unless the reader stayed connected since it last confirmed its cursor (then it read every
// entry the old stream had). The epoch counts the reader's losses of contact; a cursor confirmed
// in an older epoch is confirmed again after a reconnect when its stream still ends where it
// stopped (`confirm`).
import { compareIds, type EventId, formatEventId, parseEventId } from './event-id.ts';

/** An XRANGE/XREAD entry: [id, [field, value, ...]]. */
export type StreamEntry = [string, string[]];

/** Entries lost before `after` was followed by the first delivered entry. */
export interface Gap {
  /** The last id this replica delivered on the channel before the gap. */
  readonly after: string;
}

export type Deliver = (channel: string, entries: StreamEntry[], gap: Gap | null) => void;

interface Cursor {
  /** The last id delivered. */
  id: string;
  /** Its sequence number in the channel (entries-added when joined); null when unknown. */
  n: number | null;
  /** The reader's epoch when `n` was last confirmed. */
  epoch: number;
}

/** The n field of an entry, or null (entries written before sequence numbers). */
export function entrySeq(entry: StreamEntry): number | null {
  const fields = entry[1];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'n') {
      const n = Number(fields[i + 1]);
      return Number.isSafeInteger(n) ? n : null;
    }
  }
  return null;
}

/** A field of XINFO STREAM's flat reply. */
export function infoField(info: unknown[], name: string): unknown {
  for (let i = 0; i + 1 < info.length; i += 2) if (info[i] === name) return info[i + 1];
  return undefined;
}

export class Cursors {
  private readonly map = new Map<string, Cursor>();
  /** Bumped on every loss of contact: a cursor confirmed in an older epoch may have missed a loss. */
  epoch = 0;

  get size(): number {
    return this.map.size;
  }

  has(channel: string): boolean {
    return this.map.has(channel);
  }

  channels(): IterableIterator<string> {
    return this.map.keys();
  }

  /** The last id delivered on the channel, as text; undefined when not joined. */
  idOf(channel: string): string | undefined {
    return this.map.get(channel)?.id;
  }

  cursor(channel: string): EventId | null {
    const c = this.map.get(channel);
    return c === undefined ? null : parseEventId(c.id);
  }

  /** Reads the channel's stream from after `after` (whose sequence number is `n`) on. */
  set(channel: string, after: EventId, n: number | null): void {
    this.map.set(channel, { id: formatEventId(after), n, epoch: this.epoch });
  }

  delete(channel: string): void {
    this.map.delete(channel);
  }

  /**
   * XINFO STREAM of the channel's key after a reconnect: when the stream still ends at the cursor
   * (same last id, same entries-added), nothing was lost behind it: confirmed in this epoch.
   */
  confirm(channel: string, info: unknown, epoch = this.epoch): void {
    const cursor = this.map.get(channel);
    if (cursor === undefined || !Array.isArray(info)) return;
    const last = infoField(info, 'last-generated-id');
    if (last === cursor.id && Number(infoField(info, 'entries-added')) === cursor.n) {
      cursor.epoch = epoch;
    }
  }

  /**
   * Delivers the entries after the channel's cursor and moves the cursor to the last one. The
   * cursor may have changed while the read was under way (the channel was left, or left and
   * joined again from a newer id): entries at or before it are not delivered twice.
   */
  advance(channel: string, entries: StreamEntry[], deliver: Deliver): void {
    const cursor = this.map.get(channel);
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
    deliver(channel, fresh, gap);
  }

  /** True when entries between the cursor and the next entry read (sequence `next`) were lost. */
  private gapBefore(cursor: Cursor, next: number | null): boolean {
    if (cursor.n === null || next === null) return false;
    if (next === cursor.n + 1) return false;
    if (next > cursor.n + 1) return true;
    // The sequence started again: a new stream under the key. Nothing was missed only if the
    // reader has been in contact since it confirmed its cursor (it read the old stream to the end).
    return cursor.epoch !== this.epoch;
  }
}

export interface ReaderEvents {
  deliver: Deliver;
  /** The channel's key holds another type: it is no longer read. */
  fault(channel: string, why: string): void;
  /** A failed read (counted in sse_broker_errors_total{op="read"}). */
  error(): void;
}

/** Live delivery, whatever the Redis layout: what the broker asks of a reader. */
export interface LiveReader {
  readonly size: number;
  /** The last id delivered on the channel; null when it is not read. */
  cursor(channel: string): EventId | null;
  /** Reads the channel's stream from after `after` (whose sequence number is `n`) on. */
  add(channel: string, after: EventId, n: number | null): EventId;
  remove(channel: string): void;
  start(): void;
  stop(): Promise<void>;
}
