// A stream of several channels (/sse/streams?channel=a&channel=b): one connection, one heartbeat,
// one buffer bound, and per channel a slot in that channel (its position and, at the seam, its
// queue). A flush hands each slot the channel's new events; the stream writes everything a tick
// brought from all its channels in ONE write, each event as the channel framed it once
// (envelopeOf: the publisher's event name, data `{"channel", "data"}`) followed by the stream's
// own `id:`, the cursor of every channel's position (wire/stream-cursor.ts).
import type { FramedEvent } from '../broker/broker.ts';
import { compareIds, type EventId } from '../broker/event-id.ts';
import { envelopeOf } from '../broker/framed-event.ts';
import { channelHash, cursorText, encodeEntry } from '../wire/stream-cursor.ts';
import type { SseConnection, StreamOwner } from './connection.ts';
import type { PageWritten, Pumped } from './replay-pump.ts';

/** The channel a slot belongs to, as far as the slot needs it. */
export interface SlotChannel {
  readonly name: string;
  /** Forgets the slot (its stream closed). */
  leaveSlot(slot: StreamSlot): void;
}

/** One channel of a several-channel stream. */
export class StreamSlot {
  readonly stream: MultiStream;
  readonly channel: SlotChannel;
  readonly hash: number;
  /** Index among the stream's slots (its entry in the cursor). */
  readonly index: number;
  /** Index in the channel's slot list, for O(1) removal; -1 once it left. */
  at = -1;
  /** The newest id of this channel the stream has (null: none, takes every live event). */
  cursor: EventId | null = null;
  /** Live events that arrived before the stream could take them. */
  queue: FramedEvent[] = [];

  constructor(stream: MultiStream, channel: SlotChannel, index: number) {
    this.stream = stream;
    this.channel = channel;
    this.hash = channelHash(channel.name);
    this.index = index;
  }

  /** A flush's events of this channel: those after the cursor go to the stream. */
  offer(pending: readonly FramedEvent[]): void {
    const cursor = this.cursor;
    const fresh =
      cursor === null || compareIds(pending[0]!, cursor) > 0
        ? pending
        : pending.filter((e) => compareIds(e, cursor) > 0);
    if (fresh.length > 0) this.stream.take(this, fresh);
  }
}

/** One event bound for the stream: the slot (channel) it is of, and the event. */
export interface Outgoing {
  slot: StreamSlot;
  event: FramedEvent;
}

export interface MultiStreamHooks {
  /** The stream has events to write at the end of this flush tick. */
  dirty(stream: MultiStream): void;
}

export class MultiStream implements StreamOwner, Pumped {
  readonly conn: SseConnection;
  readonly slots: StreamSlot[] = [];
  /** The cursor's base (ms): the stream's start, so positions near it encode short. */
  private readonly base = Date.now();
  /** Each slot's encoded cursor entry, kept so an event re-encodes only its own channel's. */
  private readonly entries: number[][] = [];
  private readonly hooks: MultiStreamHooks;
  /** Events collected this tick (written by flushOut), or queued while the replay is out. */
  private out: Outgoing[] = [];
  private queuedBytes = 0;
  private isDirty = false;
  /** Replay not written yet (all channels, in id order), and the next one. */
  backlog: Outgoing[] | null = null;
  private backlogNext = 0;
  onDrain: (() => void) | null = null;
  private closedBefore = false;

  constructor(conn: SseConnection, hooks: MultiStreamHooks) {
    this.conn = conn;
    this.hooks = hooks;
    conn.owner = this;
  }

  /** A slot for the channel (its position set by setPosition, or none: live from now). */
  addSlot(channel: SlotChannel): StreamSlot {
    const slot = new StreamSlot(this, channel, this.slots.length);
    this.slots.push(slot);
    this.entries.push(encodeEntry(slot.hash, { ms: 0, seq: 0 }, this.base));
    return slot;
  }

  setPosition(slot: StreamSlot, id: EventId): void {
    slot.cursor = id;
    this.entries[slot.index] = encodeEntry(slot.hash, id, this.base);
  }

  /** The cursor of every channel's position now. */
  cursor(): string {
    return cursorText(this.base, this.entries);
  }

  get writable(): boolean {
    return this.conn.opened && this.backlog === null;
  }

  /** A slot's fresh events: collected for this tick's write, or queued at the seam. */
  take(slot: StreamSlot, events: readonly FramedEvent[]): void {
    for (const event of events) {
      this.out.push({ slot, event });
      if (!this.writable) this.queuedBytes += event.payload.length;
    }
    if (!this.writable) {
      if (this.queuedBytes > this.conn.maxBufferedBytes) this.conn.destroy('slow_consumer');
      return;
    }
    if (!this.isDirty) {
      this.isDirty = true;
      this.hooks.dirty(this);
    }
  }

  /**
   * Writes what this tick collected (or, once the replay is out, what queued meanwhile) in one
   * write: each event's envelope and the cursor after it. Returns the events written.
   */
  flushOut(): { events: number; bytes: number } {
    this.isDirty = false;
    const out = this.out;
    this.out = [];
    this.queuedBytes = 0;
    // Queued events may include ones the replay already wrote (Redis: the replay read ahead of
    // live delivery): only those after each channel's cursor.
    const fresh = out.filter(
      (o) => o.slot.cursor === null || compareIds(o.event, o.slot.cursor) > 0,
    );
    if (fresh.length === 0) return { events: 0, bytes: 0 };
    const { parts, bytes } = this.frame(fresh);
    return this.conn.sendParts(parts) ? { events: fresh.length, bytes } : { events: 0, bytes: 0 };
  }

  /** The events' envelopes, each followed by the cursor after it; positions move on. */
  private frame(list: readonly Outgoing[]): { parts: Buffer[]; bytes: number } {
    const parts: Buffer[] = [];
    let bytes = 0;
    for (const { slot, event } of list) {
      const body = envelopeOf(event, slot.channel.name);
      this.setPosition(slot, event);
      const id = Buffer.from(`id: ${this.cursor()}\n\n`);
      parts.push(body, id);
      bytes += body.length + id.length;
    }
    return { parts, bytes };
  }

  /** The replay's next page (the replay pump's turn): the envelopes and cursors of ~maxBytes. */
  writePage(maxBytes: number): PageWritten | null {
    const backlog = this.backlog;
    if (backlog === null) return { events: 0, bytes: 0, done: true };
    let end = this.backlogNext;
    let size = 0;
    while (end < backlog.length && (end === this.backlogNext || size < maxBytes)) {
      size += backlog[end]!.event.payload.length;
      end++;
    }
    const { parts, bytes } = this.frame(backlog.slice(this.backlogNext, end));
    if (!this.conn.sendParts(parts)) return null;
    const events = end - this.backlogNext;
    this.backlogNext = end;
    const done = end >= backlog.length;
    if (done) this.backlog = null;
    return { events, bytes, done };
  }

  /** Frames the first page for the head write; the rest stays in the backlog for the pump. */
  firstPage(maxBytes: number): { parts: Buffer[]; bytes: number; events: number } {
    const backlog = this.backlog ?? [];
    let end = 0;
    let size = 0;
    while (end < backlog.length && size < maxBytes) {
      size += backlog[end]!.event.payload.length;
      end++;
    }
    this.backlogNext = end;
    if (end >= backlog.length) this.backlog = null;
    return { ...this.frame(backlog.slice(0, end)), events: end };
  }

  /** The stream closed: every slot leaves its channel. */
  streamClosed(): void {
    if (this.closedBefore) return;
    this.closedBefore = true;
    for (const slot of this.slots) if (slot.at >= 0) slot.channel.leaveSlot(slot);
    this.out = [];
    this.backlog = null;
    this.onDrain = null;
  }
}

/** Replays of several channels as one list in id order (each channel's own order kept). */
export function mergeById(lists: readonly Outgoing[][]): Outgoing[] {
  const all = lists.flat();
  return all.sort((a, b) => compareIds(a.event, b.event));
}
