// The broker carries published events to every hub that serves the channel and keeps the
// channel's record of events (the history that Last-Event-ID replays from). The hub sits on this
// interface only, so the in-memory broker (one process) and the Redis Streams broker (several
// replicas, history that outlives a process) are interchangeable.
import type { EventId } from './event-id.ts';
import type { Placement } from './resume.ts';

/** An event as a publisher gives it: data is already a string. */
export interface EventInput {
  readonly event?: string;
  readonly data: string;
}

/** An event with its id and its SSE bytes (serialized once, when the broker first sees it). */
/** An event's id, parsed and as text: what a publish answers with. */
export interface PublishedId extends EventId {
  /** `<ms>-<seq>` */
  readonly id: string;
}

export interface FramedEvent extends PublishedId {
  /** `event: ...\ndata: ...\nid: ...\n\n`, the same bytes for every subscriber. */
  readonly payload: Buffer;
}

/** What a subscriber resuming with Last-Event-ID gets: where it stands, then the events after. */
export interface Replay {
  readonly placement: Placement;
  readonly events: readonly FramedEvent[];
}

export type BrokerListener = (channel: string, events: readonly FramedEvent[]) => void;
export type BrokerStateListener = (up: boolean) => void;

/** The broker cannot take the request now (Redis unreachable): answered 503 with Retry-After. */
export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
}

/** A new channel would exceed limits.maxChannels: answered 503 naming the limit. */
export class ChannelLimitError extends Error {
  override name = 'ChannelLimitError';
  readonly limit: number;
  constructor(limit: number) {
    super(`this server holds limits.maxChannels (${limit}) channels; no new channel can start`);
    this.limit = limit;
  }
}

export interface Broker {
  readonly type: 'memory' | 'redis';
  /** True while the broker can publish and replay (always for the memory broker). */
  readonly up: boolean;
  /** Channels this process keeps state for (the number limits.maxChannels bounds). */
  readonly channelCount: number;
  /**
   * Assigns ids to the events, in order, stores them in the channel's record and delivers them to
   * the listener of every hub that joined the channel (this process's included). Resolves with the
   * events' ids once they are in the record: an acknowledged event is replayable.
   */
  publish(channel: string, events: readonly EventInput[]): Promise<PublishedId[]>;
  /** The record's answer to a Last-Event-ID: its placement and every held event after it. */
  replay(channel: string, lastEventId: string): Replay | Promise<Replay>;
  /**
   * This process has subscribers for the channel: deliver its events from now on. Returns the id
   * after which live delivery starts (every later event reaches the listener).
   */
  join(channel: string): EventId | Promise<EventId>;
  /** This process no longer has subscribers for the channel. */
  leave(channel: string): void;
  setListener(listener: BrokerListener): void;
  /** Called on every change of `up`. */
  onStateChange(listener: BrokerStateListener): void;
  /** Connects (Redis) and resolves when ready or when the first attempt failed (it retries). */
  start(): Promise<void>;
  close(): Promise<void>;
}
