// One channel's fan-out state on this server: its subscribers (live ones are swept, joining ones
// are still at the history/live seam), the events not yet written to every live subscriber, and
// the live position. The hub owns the table of channels; a channel writes its own sweep.
//
// The sweep: live subscribers are visited in rounds, a slice at a time (the hub yields to the
// event loop between slices, so publishes keep arriving while a round runs). A visit writes ONE
// chunk with every event the subscriber does not have yet: events that arrive while a round runs
// still reach the subscribers it has not visited in that round, and the ones it already visited
// in the next round. So an event reaches every subscriber within about one round, not the rest of
// the round in progress plus a whole round of its own; and each write carries every event since
// the subscriber's last one. Subscribers at the same place in the log share the same bytes (one
// payload and one framed chunk per place, built once).
import type { FramedEvent } from '../broker/broker.ts';
import { type EventId, ZERO_ID } from '../broker/event-id.ts';
import { payloadBytes } from '../broker/framed-event.ts';
import { frameChunk } from '../wire/encode.ts';
import type { SlotChannel, StreamSlot } from './multi-stream.ts';
import type { Membership, Subscription } from './subscription.ts';

/** What one flush of a channel wrote: deliveries (events x streams) and their SSE bytes. */
export interface Written {
  events: number;
  bytes: number;
}

export class Channel implements Membership, SlotChannel {
  readonly name: string;
  readonly live: Subscription[] = [];
  readonly joining: Subscription[] = [];
  /** This channel's slots in several-channel streams (each stream writes its own, once a tick). */
  readonly slots: StreamSlot[] = [];
  /** Events not yet offered to joining subscribers and stream slots, in id order. */
  fresh: FramedEvent[] = [];
  /** Events not yet written to every live subscriber: log[i] has the index logBase + i. */
  private log: FramedEvent[] = [];
  private logBase = 0;
  /** Next live subscriber the round in progress visits; -1: no round in progress. */
  private sweepAt = -1;
  /** The bytes of the log from an index to its end, payload and chunk, valid while cacheEnd is. */
  private readonly cache = new Map<number, [Buffer, Buffer]>();
  private cacheEnd = 0;
  /** Every event the broker delivers from now on has a greater id. */
  position: EventId = ZERO_ID;
  /** The newest id written to every subscriber, and to how many. */
  flushed: EventId = ZERO_ID;
  flushedTo = 0;
  /** Set while the broker is joining the channel (Redis: finding the live start). */
  ready: Promise<void> | null = null;
  /** Told when a subscriber left (the hub forgets a channel nothing uses). */
  private readonly onLeave: (ch: Channel) => void;

  constructor(name: string, onLeave: (ch: Channel) => void) {
    this.name = name;
    this.onLeave = onLeave;
  }

  get subscriberCount(): number {
    return this.live.length + this.joining.length + this.slots.length;
  }

  /** True while events wait to be written to someone (the hub keeps sweeping the channel). */
  get busy(): boolean {
    return this.fresh.length > 0 || this.log.length > 0;
  }

  addSlot(slot: StreamSlot): void {
    slot.at = this.slots.length;
    this.slots.push(slot);
  }

  leaveSlot(slot: StreamSlot): void {
    const last = this.slots.pop()!;
    if (last !== slot) {
      this.slots[slot.at] = last;
      last.at = slot.at;
    }
    slot.at = -1;
    this.onLeave(this);
  }

  /** A new subscriber, joining at the seam. */
  add(sub: Subscription): void {
    sub.slot = this.joining.length;
    this.joining.push(sub);
  }

  leave(sub: Subscription): void {
    removeAt(sub.state === 'live' ? this.live : this.joining, sub);
    this.onLeave(this);
  }

  /**
   * Moves a joining subscriber to the sweep once nothing newer than it can be missed: it has
   * every event received so far (the hub offers the fresh ones first), so it starts at the log's end.
   */
  promoteIfCaughtUp(sub: Subscription): void {
    if (sub.state === 'live' || sub.left || !sub.caughtUp(this.position)) return;
    removeAt(this.joining, sub);
    sub.state = 'live';
    sub.through = this.logBase + this.log.length;
    sub.slot = this.live.length;
    this.live.push(sub);
  }

  /** Broker delivery: the events wait for the sweep; the live position moves on. */
  receive(events: readonly FramedEvent[]): void {
    for (const e of events) {
      this.fresh.push(e);
      this.log.push(e);
    }
    this.position = events[events.length - 1]!;
  }

  /**
   * One step of the sweep: the fresh events to joining subscribers and stream slots, then up to
   * `budget` live subscribers of the round in progress (a round starts when events wait). Slow
   * consumers are cut by the connection's own bound. `visited`: live subscribers visited (at
   * least 1, so a caller's budget always shrinks); `done`: nothing waits any more.
   */
  sweep(budget: number): Step {
    const step: Step = { events: 0, bytes: 0, visited: 1, done: false };
    if (this.fresh.length > 0) this.offerFresh(step);
    if (this.sweepAt < 0) {
      if (this.log.length === 0) {
        step.done = true;
        return step;
      }
      this.sweepAt = 0;
    }
    const subs = this.live;
    const end = this.logBase + this.log.length;
    const stop = Math.min(subs.length, this.sweepAt + budget);
    let i = this.sweepAt;
    for (; i < stop; i++) {
      const sub = subs[i]!;
      const from = sub.through;
      if (from >= end) continue;
      const [payload, chunk] = this.bytesFrom(from, end);
      sub.through = end;
      if (!sub.conn.send(payload, chunk)) continue;
      step.events += end - from;
      step.bytes += payload.length;
    }
    step.visited = Math.max(1, i - this.sweepAt);
    this.sweepAt = i;
    if (i >= subs.length) step.done = this.endRound();
    else this.settle();
    return step;
  }

  /** The fresh events to joining subscribers (promoted when caught up) and stream slots. */
  private offerFresh(step: Step): void {
    const fresh = this.fresh;
    this.fresh = [];
    if (this.joining.length > 0) {
      for (const sub of [...this.joining]) {
        const written = sub.offer(fresh);
        if (written.length > 0) {
          step.events += written.length;
          step.bytes += payloadBytes(written);
        }
        this.promoteIfCaughtUp(sub);
      }
    }
    // Several-channel streams take the events and write them at the end of the tick.
    for (let i = 0; i < this.slots.length; i++) this.slots[i]!.offer(fresh);
  }

  /**
   * A round visited every live subscriber. Another follows when someone still lacks events (they
   * arrived during the round, or a subscriber moved behind the sweep when another left).
   */
  private endRound(): boolean {
    const low = this.settle();
    this.sweepAt = low < this.logBase + this.log.length ? 0 : -1;
    return this.sweepAt < 0 && this.fresh.length === 0;
  }

  /**
   * What every live subscriber has leaves the log, and the publishes waiting for it may answer
   * (checked after every step, not only at the end of a round: an O(subscribers) scan without a
   * write, small beside the step's writes). Returns the lowest place of a live subscriber.
   */
  private settle(): number {
    const end = this.logBase + this.log.length;
    let low = end;
    let open = 0;
    for (const sub of this.live) {
      if (sub.through < low) low = sub.through;
      if (!sub.conn.ended) open++;
    }
    if (low > this.logBase) {
      this.flushed = this.log[low - this.logBase - 1]!;
      this.flushedTo = open + this.joining.length + this.slots.length;
      this.log = low === end ? [] : this.log.slice(low - this.logBase);
      this.logBase = low;
    }
    return low;
  }

  /** One payload and one framed chunk for the log from `from` to `end`, built once per place. */
  private bytesFrom(from: number, end: number): [Buffer, Buffer] {
    if (this.cacheEnd !== end) {
      this.cache.clear();
      this.cacheEnd = end;
    }
    let bytes = this.cache.get(from);
    if (bytes === undefined) {
      const events = this.log.slice(from - this.logBase);
      const payload =
        events.length === 1 ? events[0]!.payload : Buffer.concat(events.map((e) => e.payload));
      bytes = [payload, frameChunk(payload)];
      this.cache.set(from, bytes);
    }
    return bytes;
  }
}

/** What one sweep step wrote: deliveries (events x streams) and their SSE bytes. */
export interface Step extends Written {
  visited: number;
  done: boolean;
}

/** Removes `sub` from `list` in O(1): the last one takes its slot. */
function removeAt(list: Subscription[], sub: Subscription): void {
  const last = list.pop()!;
  if (last !== sub) {
    list[sub.slot] = last;
    last.slot = sub.slot;
  }
  sub.slot = -1;
}
