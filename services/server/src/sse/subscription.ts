// A subscriber of a channel and its side of the history/live seam (as Mercure's LocalSubscriber
// owns its history and live queue). It is started with its replay; while its stream is not open,
// or its replay is still being written as the socket drains, live events wait in its queue; once
// everything up to the channel's live position is written it says so (caughtUp) and takes the
// shared chunk of every flush.
import type { FramedEvent } from '../broker/broker.ts';
import { compareIds, type EventId } from '../broker/event-id.ts';
import type { SseConnection, StreamOwner } from './connection.ts';
import type { ImageHold } from './replay-image.ts';
import { nextPage, type PageWritten, type Pumped } from './replay-pump.ts';

/** The channel a subscription belongs to, as far as the subscription needs it. */
export interface Membership {
  readonly name: string;
  /** Forgets the subscription (its stream closed). */
  leave(sub: Subscription): void;
}

export class Subscription implements StreamOwner, Pumped {
  readonly conn: SseConnection;
  readonly channel: Membership;
  /** 'joining' until the replay was written and the live position reached; then 'live'. */
  state: 'joining' | 'live' = 'joining';
  /** Index in the channel's array for its state, for O(1) removal; -1 once it left. */
  slot = -1;
  /** Live: the channel's log index up to which events were written to it (see Channel.sweep). */
  through = 0;
  /** The newest id written to this subscriber (null: none yet, takes every live event). */
  cursor: EventId | null = null;
  /** Live events that arrived before the stream could take them, oldest first. */
  private queue: FramedEvent[] = [];
  private queuedBytes = 0;
  /** Replay events not written yet (a long replay goes out page by page), and the next one. */
  backlog: readonly FramedEvent[] | null = null;
  backlogNext = 0;
  /** Puts the subscription back in the replay pump when its socket drains (pumped ones only). */
  onDrain: (() => void) | null = null;
  /** The shared bytes of its replay (replay-image.ts), held until the replay is out. */
  private hold: ImageHold | null = null;

  constructor(conn: SseConnection, channel: Membership) {
    this.conn = conn;
    this.channel = channel;
    conn.owner = this;
  }

  /** The stream is open and its replay written: live events can be written at once. */
  get writable(): boolean {
    return this.conn.opened && this.backlog === null;
  }

  get left(): boolean {
    return this.slot < 0;
  }

  /**
   * Offers a flush's events while joining: those after the cursor are written when the stream
   * can take them, queued otherwise (a queue past the buffer bound cuts the subscriber). Returns
   * the events written.
   */
  offer(pending: readonly FramedEvent[]): readonly FramedEvent[] {
    const cursor = this.cursor;
    const fresh = cursor === null ? pending : pending.filter((e) => compareIds(e, cursor) > 0);
    if (fresh.length === 0) return fresh;
    if (!this.writable) {
      for (const e of fresh) {
        this.queue.push(e);
        this.queuedBytes += e.payload.length;
      }
      if (this.queuedBytes > this.conn.maxBufferedBytes) this.conn.destroy('slow_consumer');
      return [];
    }
    return this.write(fresh) ? fresh : [];
  }

  /** The next page of the replay backlog (the replay pump's turn). */
  writePage(maxBytes: number): PageWritten | null {
    const backlog = this.backlog;
    if (backlog === null) return { events: 0, bytes: 0, done: true };
    const from = this.backlogNext;
    const page = nextPage(backlog, from, maxBytes, this.hold);
    if (!this.conn.sendParts(page.parts)) return null;
    this.backlogNext = page.next;
    this.cursor = backlog[page.next - 1]!;
    const done = page.next >= backlog.length;
    if (done) {
      this.backlog = null;
      this.releaseImage();
    }
    return { events: page.next - from, bytes: page.bytes, done };
  }

  /** Holds a shared image of its replay (taken by the hub; let go when the replay is out). */
  useImage(hold: ImageHold): void {
    this.releaseImage();
    this.hold = hold;
  }

  /** The image it holds, if any (for the first page). */
  get image(): ImageHold | null {
    return this.hold;
  }

  releaseImage(): void {
    this.hold?.images.release(this.hold.image);
    this.hold = null;
  }

  /** Writes the queued events after the cursor (once the replay is out). Returns them. */
  writeQueue(): readonly FramedEvent[] {
    const cursor = this.cursor;
    const fresh =
      cursor === null ? this.queue : this.queue.filter((e) => compareIds(e, cursor) > 0);
    this.queue = [];
    this.queuedBytes = 0;
    if (fresh.length === 0) return fresh;
    return this.write(fresh) ? fresh : [];
  }

  private write(events: readonly FramedEvent[]): boolean {
    const ok =
      events.length === 1
        ? this.conn.send(events[0]!.payload)
        : this.conn.sendParts(events.map((e) => e.payload));
    if (ok) this.cursor = events[events.length - 1]!;
    return ok;
  }

  /** True when nothing newer than the channel's live position can still reach it by the seam. */
  caughtUp(position: EventId): boolean {
    return this.writable && (this.cursor === null || compareIds(this.cursor, position) <= 0);
  }

  /** The stream closed: leave the channel and let go of everything held. */
  streamClosed(): void {
    if (!this.left) this.channel.leave(this);
    this.slot = -1;
    this.queue = [];
    this.queuedBytes = 0;
    this.backlog = null;
    this.onDrain = null;
    this.releaseImage();
  }
}
