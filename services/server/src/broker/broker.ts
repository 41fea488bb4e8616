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

/** An event with its id (parsed, and as `<ms>-<seq>` text) and its SSE bytes. */
export interface FramedEvent extends EventId {
  readonly id: string;
  /** `event: ...\ndata: ...\nid: ...\n\n`, the same bytes for every subscriber. */
  readonly payload: Buffer;
  /** The event as several-channel streams carry it (built once, when first needed). */
  envelope?: Buffer;
}

/** What a subscriber resuming with Last-Event-ID gets: where it stands, then the events after. */
export interface Replay {
  readonly placement: Placement;
  readonly events: readonly FramedEvent[];
}

/**
 * An idempotent publish (the Idempotency-Key header): the key, scoped to the channel, and a
 * fingerprint of the events, so that a repeat with another body is told apart from a retry.
 */
export interface IdempotencyRequest {
  readonly key: string;
  readonly fingerprint: string;
}

/** The answer a publish gave, kept with its idempotency key and given again to a retry. */
export interface PublishAnswer {
  readonly ids: readonly string[];
  readonly subscribers: number;
}

/**
 * What a publish did: stored the events (their ids), or, for an idempotency key already used on
 * the channel, nothing: the first answer again, "still in flight", or "that key had another body".
 */
export type PublishOutcome =
  | { readonly kind: 'published'; readonly ids: readonly string[]; readonly last: EventId }
  | { readonly kind: 'replayed'; readonly answer: PublishAnswer }
  | { readonly kind: 'in_flight' }
  | { readonly kind: 'key_reused' };

export type BrokerListener = (channel: string, events: readonly FramedEvent[]) => void;
export type BrokerStateListener = (up: boolean) => void;
/** A channel the broker cannot serve (a foreign key of the wrong type in Redis), or null again. */
export type ChannelFaultListener = (channel: string, fault: string | null) => void;

/**
 * The broker cannot take the request now (Redis unreachable): answered 503 with Retry-After.
 * `outcome` says whether the events may have been stored anyway (a timeout after the command was
 * sent: a retry must carry the same Idempotency-Key) or certainly were not.
 */
export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
  /** For a publish: whether its events may have been stored; null for other operations. */
  readonly outcome: 'unknown' | 'not_published' | null;
  constructor(message: string, outcome: 'unknown' | 'not_published' | null = null) {
    super(message);
    this.outcome = outcome;
  }
}

/** One channel cannot be served (its Redis key holds another type): 503 for that channel only. */
export class ChannelUnavailableError extends Error {
  override name = 'ChannelUnavailableError';
  readonly channel: string;
  constructor(channel: string, why: string) {
    super(`channel ${channel} is unavailable: ${why}`);
    this.channel = channel;
  }
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
  /**
   * Assigns ids to the events, in order, stores them in the channel's record and delivers them to
   * the listener of every hub that joined the channel (this process's included). Resolves with the
   * events' ids once they are in the record: an acknowledged event is replayable. With an
   * idempotency key, the check and the store are one atomic step: a key already used on the
   * channel stores nothing and answers what the first request got.
   */
  publish(
    channel: string,
    events: readonly EventInput[],
    idempotency?: IdempotencyRequest,
  ): Promise<PublishOutcome>;
  /** Records the answer given to an idempotent publish, for its retries (not awaited). */
  settleIdempotent(channel: string, key: string, answer: PublishAnswer): void;
  /** The record's answer to a Last-Event-ID: its placement and every held event after it. */
  replay(channel: string, lastEventId: string): Promise<Replay>;
  /**
   * This process has subscribers for the channel: deliver its events from now on. Resolves with
   * the id after which live delivery starts (every later event reaches the listener).
   */
  join(channel: string): Promise<EventId>;
  /** This process no longer has subscribers for the channel. */
  leave(channel: string): void;
  setListener(listener: BrokerListener): void;
  /** Called on every change of `up`. */
  onStateChange(listener: BrokerStateListener): void;
  /** Called when one channel cannot be served any more (its subscribers must be told). */
  onChannelFault(listener: ChannelFaultListener): void;
  /** Connects (Redis) and resolves when ready or when the first attempt failed (it retries). */
  start(): Promise<void>;
  close(): Promise<void>;
}
