// A subscriber of a channel: where it sits in the channel, and its side of the history/live seam.
// While joining it owns a small queue of live events that arrived before its replay was written;
// once it has written everything up to the channel's live position it takes the shared chunk.
import type { FramedEvent } from '../broker/broker.ts';
import type { EventId } from '../broker/event-id.ts';
import type { SseConnection } from './connection.ts';

export class Subscription {
  readonly conn: SseConnection;
  /** The channel's name (the hub owns the channel object). */
  readonly channel: string;
  /** 'joining' until the replay was written and the live position reached; then 'live'. */
  state: 'joining' | 'live' = 'joining';
  /** Index in the channel's array for its state, for O(1) removal. */
  slot = -1;
  /** The newest id written to this subscriber (null: none yet, takes every live event). */
  cursor: EventId | null = null;
  /** Live events received before the stream opened (async replay), oldest first. */
  queue: FramedEvent[] = [];
  queuedBytes = 0;

  constructor(conn: SseConnection, channel: string) {
    this.conn = conn;
    this.channel = channel;
  }
}
