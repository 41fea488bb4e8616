// The fan-out hub: channels, their subscribers and the write path
//   publish -> broker (ids, record) -> listener -> coalesce per tick -> one chunk -> every subscriber.
// The broker keeps each channel's record (history); the hub keeps only what fan-out needs. A
// channel lives here while it has subscribers, pending events or publishes waiting for them.
import type { OutgoingHttpHeaders } from 'node:http';
import type {
  Broker,
  EventInput,
  FramedEvent,
  IdempotencyRequest,
  PublishAnswer,
  Replay,
} from '../broker/broker.ts';
import { compareIds, type EventId, ZERO_ID } from '../broker/event-id.ts';
import { frameReset } from '../broker/framed-event.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { ConnectionOwner, SseConnection } from './connection.ts';
import { encodeNotice, encodeRetry, frameChunk } from './encode.ts';
import { nextPage, REPLAY_PAGE_BYTES, ReplayPump } from './replay-pump.ts';
import { Subscription } from './subscription.ts';

export interface HubOptions {
  retryMs: number;
  /** Longest a publish waits for its events to reach this process's subscribers. */
  publishWaitMs: number;
}

/**
 * What a publish answers: the events' ids and the local subscribers they were written to; or,
 * for an idempotency key already used on the channel, the first answer again, "still in flight",
 * or "that key was used with another body".
 */
export type HubPublishResult =
  | { readonly kind: 'published' | 'replayed'; readonly answer: PublishAnswer }
  | { readonly kind: 'in_flight' | 'key_reused' };

/** Publishing or subscribing is refused for now (shutting down): 503 with Retry-After. */
export class DrainingError extends Error {
  override name = 'DrainingError';
}

interface Waiter {
  last: EventId;
  ids: string[];
  startedAt: number; // performance.now()
  resolve: (answer: PublishAnswer) => void;
}

class Channel {
  readonly name: string;
  readonly live: Subscription[] = [];
  readonly joining: Subscription[] = [];
  pending: FramedEvent[] = [];
  waiters: Waiter[] = [];
  /** Every event the broker delivers from now on has a greater id. */
  position: EventId = ZERO_ID;
  /** The newest id written by a flush, and to how many subscribers. */
  flushed: EventId = ZERO_ID;
  flushedTo = 0;
  /** Set while the broker is joining the channel (Redis: finding the live start). */
  ready: Promise<void> | null = null;

  constructor(name: string) {
    this.name = name;
  }

  get subscriberCount(): number {
    return this.live.length + this.joining.length;
  }

  get unused(): boolean {
    return this.subscriberCount === 0 && this.pending.length === 0 && this.waiters.length === 0;
  }
}

const ROUTE = '/sse/channels/:channel';
/** Retry-After of a channel the broker cannot serve, as the notice's reconnection delay. */
const CHANNEL_FAULT_RETRY_MS = 5000;

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function';
}

export class Hub implements ConnectionOwner {
  private readonly channels = new Map<string, Channel>();
  private readonly dirty = new Set<Channel>();
  private flushScheduled = false;
  private readonly broker: Broker;
  private readonly options: HubOptions;
  private readonly metrics: ServerMetrics;
  private readonly retryChunk: Buffer;
  private readonly pump: ReplayPump;
  private sweepTimer: NodeJS.Timeout | null = null;
  private inflight = 0;
  /**
   * Idempotency keys (channel NUL key -> fingerprint) of this process's publishes under way: a
   * repeat answers "in flight" (or "reused" with another body) at once, even while the broker
   * cannot be asked; the broker's own record covers other replicas and later repeats.
   */
  private readonly keysInFlight = new Map<string, string>();
  /** Set at shutdown: publishes are refused, accepted ones are still delivered. */
  draining = false;

  constructor(broker: Broker, options: HubOptions, metrics: ServerMetrics) {
    this.broker = broker;
    this.options = options;
    this.metrics = metrics;
    this.retryChunk = Buffer.from(encodeRetry(options.retryMs));
    this.pump = new ReplayPump({
      written: (events, bytes) => this.countReplayed(events, bytes),
      done: (sub) => this.caughtUp(sub),
    });
    broker.setListener((channel, events) => this.receive(channel, events));
    broker.onChannelFault((channel, fault) => {
      if (fault !== null) this.closeChannel(channel, fault);
    });
    this.sweepTimer = setInterval(sweepTick, 1000, this);
    this.sweepTimer.unref();
  }

  subscriberCount(name: string): number {
    return this.channels.get(name)?.subscriberCount ?? 0;
  }

  /** Every channel with subscribers on this process, with their number (for GET /channels). */
  *localSubscribers(): IterableIterator<[string, number]> {
    for (const ch of this.channels.values()) {
      if (ch.subscriberCount > 0) yield [ch.name, ch.subscriberCount];
    }
  }

  /** The hub's channel, joined at the broker when new (throws ChannelLimitError, unavailable). */
  private channel(name: string): Channel {
    let ch = this.channels.get(name);
    if (ch !== undefined) return ch;
    const joined = this.broker.join(name);
    const created = new Channel(name);
    ch = created;
    if (isPromise(joined)) {
      created.ready = joined.then(
        (position) => {
          created.position = created.flushed = position;
          created.ready = null;
          this.release(created); // its subscribers may all have gone while it joined
        },
        (err: unknown) => {
          created.ready = null;
          this.release(created);
          throw err;
        },
      );
      created.ready.catch(() => {}); // awaited by the subscribers; handled there
    } else {
      created.position = created.flushed = joined;
    }
    this.channels.set(name, created);
    return created;
  }

  /** Forgets a channel nothing uses any more, at once (it holds no slot of limits.maxChannels). */
  private release(ch: Channel): void {
    if (!ch.unused || ch.ready !== null || this.channels.get(ch.name) !== ch) return;
    this.channels.delete(ch.name);
    this.dirty.delete(ch);
    this.broker.leave(ch.name);
  }

  /**
   * Opens `conn` on channel `name`: headers, `retry:`, then (with a Last-Event-ID) an explicit
   * `reset` when the record cannot continue the id, and the events after it; then live events.
   * Replay and live events meet at the subscriber's cursor: no gap and no duplicate at the seam.
   * Returns a promise when the broker answers asynchronously (Redis); it rejects, before anything
   * was written, when the channel cannot be joined or replayed.
   */
  subscribe(
    conn: SseConnection,
    name: string,
    lastEventId: string | null,
    headers: OutgoingHttpHeaders,
  ): void | Promise<void> {
    if (this.draining) throw new DrainingError('the server is shutting down');
    const ch = this.channel(name);
    const sub = new Subscription(conn, name);
    conn.owner = this;
    conn.subscription = sub;
    sub.slot = ch.joining.length;
    ch.joining.push(sub);
    const replayFor = () => (lastEventId === null ? null : this.broker.replay(name, lastEventId));
    // After the channel's join, if that is still under way (Redis).
    const replay = ch.ready === null ? replayFor() : ch.ready.then(replayFor);
    if (!isPromise(replay)) {
      this.open(sub, replay, headers);
      return;
    }
    return replay.then(
      (r) => this.open(sub, r, headers),
      (err: unknown) => this.abandon(sub, err),
    );
  }

  /** A subscription whose join or replay failed: forget it and pass the error on. */
  private abandon(sub: Subscription, err: unknown): never {
    this.detach(sub.conn);
    throw err;
  }

  /**
   * Writes headers, retry, the reset and the first page of the replay in one write. A longer
   * replay goes on page by page as the socket drains (the replay pump); the live events that
   * arrive meanwhile wait in the subscription's queue.
   */
  private open(sub: Subscription, replay: Replay | null, headers: OutgoingHttpHeaders) {
    const conn = sub.conn;
    if (conn.ended || sub.slot < 0) return;
    const parts: Buffer[] = [this.retryChunk];
    let events: readonly FramedEvent[] = [];
    if (replay !== null) {
      const { placement } = replay;
      sub.cursor = placement.after;
      if (placement.reset !== null) {
        const { reason, lastEventId } = placement.reset;
        parts.push(frameReset(reason, lastEventId, placement.after).payload);
      }
      events = replay.events;
    }
    const first = nextPage(events, 0, Math.min(REPLAY_PAGE_BYTES, conn.maxBufferedBytes));
    for (const p of first.parts) parts.push(p);
    if (first.next > 0) sub.cursor = events[first.next - 1]!;
    conn.open(headers, parts);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    this.metrics.bytesSent.inc(bytes);
    const resets = parts.length - 1 - first.parts.length;
    if (resets > 0) this.metrics.eventsSent[ROUTE].inc(resets);
    if (first.next > 0) {
      this.metrics.replayedEvents.inc(first.next);
      this.metrics.eventsSent[ROUTE].inc(first.next);
    }
    if (first.next < events.length) {
      sub.backlog = events;
      sub.backlogNext = first.next;
      this.pump.add(sub);
      return;
    }
    this.caughtUp(sub);
  }

  /** The replay is written: the live events queued meanwhile follow, then the shared chunk. */
  private caughtUp(sub: Subscription): void {
    if (sub.conn.ended || sub.slot < 0) return;
    const ch = this.channels.get(sub.channel);
    const written = sub.writeQueue(Date.now());
    if (written.length > 0) this.countSent(written.length, payloadBytes(written));
    if (ch !== undefined && ch.pending.length === 0) this.goLiveIfCaughtUp(ch, sub);
  }

  private countReplayed(events: number, bytes: number): void {
    this.metrics.replayedEvents.inc(events);
    this.countSent(events, bytes);
  }

  private countSent(events: number, bytes: number): void {
    this.metrics.eventsSent[ROUTE].inc(events);
    this.metrics.bytesSent.inc(bytes);
  }

  /** Moves a joined subscriber to the shared chunk once nothing newer than it can be missed. */
  private goLiveIfCaughtUp(ch: Channel, sub: Subscription): void {
    if (sub.state === 'live' || !sub.caughtUp(ch.position)) return;
    removeAt(ch.joining, sub);
    sub.state = 'live';
    sub.slot = ch.live.length;
    ch.live.push(sub);
  }

  /** Forgets a closed subscriber (O(1): swap with the last); an unused channel goes at once. */
  detach(conn: SseConnection): void {
    const sub = conn.subscription;
    if (sub === null || sub.slot < 0) return;
    const ch = this.channels.get(sub.channel);
    if (ch !== undefined) removeAt(sub.state === 'live' ? ch.live : ch.joining, sub);
    sub.drop();
    conn.subscription = null;
    if (ch !== undefined) this.release(ch);
  }

  /**
   * The broker cannot serve the channel (its Redis key holds another type): every subscriber
   * gets the `unavailable` notice with a retry and its stream ends; the channel is forgotten.
   */
  private closeChannel(name: string, why: string): void {
    const ch = this.channels.get(name);
    if (ch === undefined) return;
    const notice = Buffer.from(
      encodeNotice(
        'unavailable',
        {
          error: 'channel_unavailable',
          message: `channel ${name} is unavailable: ${why}`,
          retryMs: CHANNEL_FAULT_RETRY_MS,
        },
        CHANNEL_FAULT_RETRY_MS,
      ),
    );
    for (const sub of [...ch.live, ...ch.joining]) {
      if (sub.conn.opened) sub.conn.end(notice, 'error');
      else sub.conn.destroy('error');
    }
  }

  /**
   * Publishes events; resolves once they are in the broker's record and their bytes were handed
   * to every local subscriber (or after publishWaitMs, should live delivery lag that long). With
   * an idempotency key already used on the channel, nothing is published (see HubPublishResult).
   */
  async publish(
    name: string,
    events: readonly EventInput[],
    idempotency?: IdempotencyRequest,
  ): Promise<HubPublishResult> {
    if (this.draining) throw new DrainingError('the server is shutting down');
    const local = idempotency === undefined ? null : `${name}\0${idempotency.key}`;
    if (local !== null) {
      const fingerprint = this.keysInFlight.get(local);
      if (fingerprint !== undefined) {
        return { kind: fingerprint === idempotency!.fingerprint ? 'in_flight' : 'key_reused' };
      }
      this.keysInFlight.set(local, idempotency!.fingerprint);
    }
    this.inflight++;
    try {
      const startedAt = performance.now();
      const outcome = await this.broker.publish(name, events, idempotency);
      if (outcome.kind !== 'published') {
        return outcome.kind === 'replayed' ? { kind: 'replayed', answer: outcome.answer } : outcome;
      }
      const published = outcome.ids;
      this.metrics.brokerPublishDuration.observe((performance.now() - startedAt) / 1000);
      this.metrics.eventsPublished.inc(published.length);
      const answer = await this.delivered(name, published, startedAt);
      if (idempotency !== undefined) this.broker.settleIdempotent(name, idempotency.key, answer);
      return { kind: 'published', answer };
    } finally {
      this.inflight--;
      if (local !== null) this.keysInFlight.delete(local);
    }
  }

  /** Resolves once the channel's flushes have handed out the last of `published` (own ids). */
  private delivered(
    name: string,
    published: readonly (EventId & { id: string })[],
    startedAt: number,
  ): Promise<PublishAnswer> | PublishAnswer {
    const ids = published.map((e) => e.id);
    const ch = this.channels.get(name);
    if (ch?.ready) {
      // Joining: its live position (every later event comes through a flush) is not known yet.
      return ch.ready.then(
        () => this.delivered(name, published, startedAt),
        () => ({ ids, subscribers: 0 }),
      );
    }
    const last = published[published.length - 1]!;
    // Already handed out (to flushedTo subscribers), or nobody here to hand it to: answer now.
    const handedOut = ch !== undefined && compareIds(ch.flushed, last) >= 0;
    if (handedOut || ch === undefined || ch.subscriberCount === 0) {
      this.metrics.fanoutDuration.observe((performance.now() - startedAt) / 1000);
      return { ids, subscribers: handedOut ? ch.flushedTo : 0 };
    }
    return new Promise<PublishAnswer>((resolve) => {
      ch.waiters.push({ last, ids, startedAt, resolve });
    });
  }

  /** Broker delivery: queue the events for this tick's flush (ignored for unknown channels). */
  private receive(name: string, events: readonly FramedEvent[]): void {
    const ch = this.channels.get(name);
    if (ch === undefined) return;
    for (const e of events) ch.pending.push(e);
    ch.position = events[events.length - 1]!;
    this.dirty.add(ch);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushTick, this);
    }
  }

  /** Writes every channel's pending events: one chunk per channel, the same bytes to everyone. */
  flush(): void {
    this.flushScheduled = false;
    const now = Date.now();
    for (const ch of this.dirty) {
      const pending = ch.pending;
      ch.pending = [];
      if (pending.length === 0) continue;
      const payload =
        pending.length === 1 ? pending[0]!.payload : Buffer.concat(pending.map((p) => p.payload));
      const subs = ch.live;
      let delivered = 0;
      if (subs.length > 0) {
        const chunk = frameChunk(payload);
        for (let i = 0; i < subs.length; i++) {
          const conn = subs[i]!.conn;
          if (conn.send(payload, chunk)) {
            conn.lastWriteAt = now;
            delivered++;
          }
        }
      }
      let events = delivered * pending.length;
      let bytes = delivered * payload.length;
      if (ch.joining.length > 0) {
        for (const sub of [...ch.joining]) {
          const written = sub.offer(pending, now);
          if (written.length > 0) {
            events += written.length;
            bytes += payloadBytes(written);
            delivered++;
          }
          this.goLiveIfCaughtUp(ch, sub);
        }
      }
      ch.flushed = pending[pending.length - 1]!;
      ch.flushedTo = delivered;
      if (events > 0) this.countSent(events, bytes);
      if (ch.waiters.length > 0) this.settle(ch);
      this.release(ch);
    }
    this.dirty.clear();
  }

  private settle(ch: Channel): void {
    const done = performance.now();
    const keep: Waiter[] = [];
    for (const w of ch.waiters) {
      if (compareIds(w.last, ch.flushed) > 0) {
        keep.push(w);
        continue;
      }
      this.metrics.fanoutDuration.observe((done - w.startedAt) / 1000);
      w.resolve({ ids: w.ids, subscribers: ch.flushedTo });
    }
    ch.waiters = keep;
  }

  /** Answers publishes whose live delivery lags past publishWaitMs. */
  sweep(): void {
    const late = performance.now() - this.options.publishWaitMs;
    for (const ch of this.channels.values()) {
      if (ch.waiters.length === 0 || ch.waiters[0]!.startedAt >= late) continue;
      const keep: Waiter[] = [];
      for (const w of ch.waiters) {
        if (w.startedAt < late) w.resolve({ ids: w.ids, subscribers: 0 });
        else keep.push(w);
      }
      ch.waiters = keep;
      this.release(ch);
    }
  }

  /**
   * Shutdown, step one: refuse new publishes, then wait (until `deadline`, Date.now() scale) for
   * the accepted ones, which settle only once their events were written to every local subscriber.
   */
  async drain(deadline: number): Promise<void> {
    this.draining = true;
    while (this.inflight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.flushScheduled) this.flush();
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }
}

function payloadBytes(events: readonly FramedEvent[]): number {
  let bytes = 0;
  for (const e of events) bytes += e.payload.length;
  return bytes;
}

function removeAt(list: Subscription[], sub: Subscription): void {
  const last = list.pop()!;
  if (last !== sub) {
    list[sub.slot] = last;
    last.slot = sub.slot;
  }
  sub.slot = -1;
}

function flushTick(hub: Hub): void {
  hub.flush();
}

function sweepTick(hub: Hub): void {
  hub.sweep();
}
