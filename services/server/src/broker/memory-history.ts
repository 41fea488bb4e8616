// A channel's record in the memory broker: a ring buffer of framed events with increasing ids,
// bounded in count (historySize), stored bytes (historyMaxBytes: the events' SSE bytes) and age
// (historyTtlMs, by the id's ms). It remembers the newest id it ever dropped, which is what tells
// a resuming client that events after its id are gone.
import type { FramedEvent } from './broker.ts';
import { compareIds, type EventId } from './event-id.ts';
import type { RecordState } from './resume.ts';

export class MemoryHistory implements RecordState {
  private readonly ring: (FramedEvent | undefined)[];
  private readonly maxBytes: number;
  private head = 0; // index of the oldest entry
  private count = 0;
  /** SSE bytes held. */
  bytes = 0;
  last: EventId | null = null;
  maxDeleted: EventId | null = null;

  constructor(maxEvents: number, maxBytes: number) {
    this.ring = new Array(maxEvents);
    this.maxBytes = maxBytes;
  }

  get size(): number {
    return this.count;
  }

  get oldest(): FramedEvent | null {
    return this.count === 0 ? null : this.at(0);
  }

  private at(i: number): FramedEvent {
    return this.ring[(this.head + i) % this.ring.length]!;
  }

  push(event: FramedEvent): void {
    this.last = idOf(event);
    const cap = this.ring.length;
    if (cap === 0 || event.payload.length > this.maxBytes) {
      this.maxDeleted = this.last;
      return;
    }
    if (this.count === cap) this.dropOldest();
    while (this.count > 0 && this.bytes + event.payload.length > this.maxBytes) this.dropOldest();
    this.ring[(this.head + this.count) % cap] = event;
    this.count++;
    this.bytes += event.payload.length;
  }

  private dropOldest(): void {
    const gone = this.at(0);
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    this.bytes -= gone.payload.length;
    this.maxDeleted = idOf(gone);
  }

  /** Drops events whose id time is before `before` (Date.now() scale). */
  expire(before: number): void {
    while (this.count > 0 && this.at(0).ms < before) this.dropOldest();
  }

  /** Every held event with an id greater than `id`, oldest first. */
  after(id: EventId): FramedEvent[] {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareIds(this.at(mid), id) > 0) hi = mid;
      else lo = mid + 1;
    }
    const out: FramedEvent[] = new Array(this.count - lo);
    for (let i = lo; i < this.count; i++) out[i - lo] = this.at(i);
    return out;
  }
}

/** The id alone, so that a remembered id does not keep an event's bytes alive. */
function idOf(event: FramedEvent): EventId {
  return { ms: event.ms, seq: event.seq };
}
