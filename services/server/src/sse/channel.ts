// One channel's fan-out state on this server: its subscribers (live ones take the shared chunk,
// joining ones are still at the history/live seam), the events waiting for this tick's flush,
// and the live position. The hub owns the table of channels; a channel writes its own flush.
import type { FramedEvent } from '../broker/broker.ts';
import { type EventId, ZERO_ID } from '../broker/event-id.ts';
import { frameChunk } from '../wire/encode.ts';
import type { SlotChannel, StreamSlot } from './multi-stream.ts';
import type { Membership, Subscription } from './subscription.ts';

/** What one flush of a channel wrote: deliveries (events x streams) and their SSE bytes. */
export interface Written {
  events: number;
  bytes: number;
}

const NOTHING: Written = { events: 0, bytes: 0 };

export class Channel implements Membership, SlotChannel {
  readonly name: string;
  readonly live: Subscription[] = [];
  readonly joining: Subscription[] = [];
  /** This channel's slots in several-channel streams (each stream writes its own, once a tick). */
  readonly slots: StreamSlot[] = [];
  /** Events received since the last flush, in id order. */
  pending: FramedEvent[] = [];
  /** Every event the broker delivers from now on has a greater id. */
  position: EventId = ZERO_ID;
  /** The newest id written by a flush, and to how many subscribers. */
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

  /** Moves a joining subscriber to the shared chunk once nothing newer than it can be missed. */
  promoteIfCaughtUp(sub: Subscription): void {
    if (sub.state === 'live' || sub.left || !sub.caughtUp(this.position)) return;
    removeAt(this.joining, sub);
    sub.state = 'live';
    sub.slot = this.live.length;
    this.live.push(sub);
  }

  /** Broker delivery: the events wait for the next flush; the live position moves on. */
  receive(events: readonly FramedEvent[]): void {
    for (const e of events) this.pending.push(e);
    this.position = events[events.length - 1]!;
  }

  /**
   * Writes the pending events: one payload and ONE chunk for every live subscriber (the same
   * bytes, one write each), the events after their cursor for joining ones. Slow consumers are
   * cut by the connection's own bound.
   */
  flush(): Written {
    const pending = this.pending;
    this.pending = [];
    if (pending.length === 0) return NOTHING;
    const payload =
      pending.length === 1 ? pending[0]!.payload : Buffer.concat(pending.map((p) => p.payload));
    const subs = this.live;
    let delivered = 0;
    if (subs.length > 0) {
      const chunk = frameChunk(payload);
      for (let i = 0; i < subs.length; i++) if (subs[i]!.conn.send(payload, chunk)) delivered++;
    }
    let events = delivered * pending.length;
    let bytes = delivered * payload.length;
    if (this.joining.length > 0) {
      for (const sub of [...this.joining]) {
        const written = sub.offer(pending);
        if (written.length > 0) {
          events += written.length;
          bytes += payloadBytes(written);
          delivered++;
        }
        this.promoteIfCaughtUp(sub);
      }
    }
    // Several-channel streams take the events and write them at the end of the tick.
    for (let i = 0; i < this.slots.length; i++) this.slots[i]!.offer(pending);
    this.flushed = pending[pending.length - 1]!;
    this.flushedTo = delivered + this.slots.length;
    return { events, bytes };
  }
}

export function payloadBytes(events: readonly FramedEvent[]): number {
  let bytes = 0;
  for (const e of events) bytes += e.payload.length;
  return bytes;
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
