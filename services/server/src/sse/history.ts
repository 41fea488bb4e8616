// A channel's replay history: a ring buffer of framed events with increasing ids, bounded in
// count (historySize) and age (historyTtlMs).

export interface StoredEvent {
  readonly id: number;
  /** The event's SSE bytes, exactly as sent live (shared with the live write, never copied). */
  readonly payload: Buffer;
  /** Date.now() when it was sent live. */
  readonly at: number;
}

export class History {
  private readonly ring: (StoredEvent | undefined)[];
  private head = 0; // index of the oldest entry
  private count = 0;
  /** The newest id ever stored (kept after the events themselves expire); 0 before any. */
  lastId = 0;

  constructor(capacity: number) {
    this.ring = new Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  get capacity(): number {
    return this.ring.length;
  }

  /** The oldest id still held, or null when empty. */
  get oldestId(): number | null {
    return this.count === 0 ? null : this.at(0).id;
  }

  private at(i: number): StoredEvent {
    return this.ring[(this.head + i) % this.ring.length]!;
  }

  push(event: StoredEvent): void {
    this.lastId = event.id;
    const cap = this.ring.length;
    if (cap === 0) return;
    if (this.count < cap) {
      this.ring[(this.head + this.count) % cap] = event;
      this.count++;
    } else {
      this.ring[this.head] = event;
      this.head = (this.head + 1) % cap;
    }
  }

  /** Drops events sent before `before` (Date.now() scale). */
  expire(before: number): void {
    while (this.count > 0 && this.at(0).at < before) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.count--;
    }
  }

  /** Every held event with an id greater than `id`, oldest first. */
  after(id: number): StoredEvent[] {
    // Binary search for the first entry with entry.id > id.
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).id > id) hi = mid;
      else lo = mid + 1;
    }
    const out: StoredEvent[] = new Array(this.count - lo);
    for (let i = lo; i < this.count; i++) out[i - lo] = this.at(i);
    return out;
  }
}
