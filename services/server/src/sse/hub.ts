// The fan-out hub: the table of channels this server serves, and the coalesced flush
//   publish -> broker (ids, record) -> receive -> one flush per tick -> each channel's one chunk
// The broker keeps each channel's record (history); a channel lives here while it has
// subscribers, events waiting for a flush, or publishes waiting for one (publish-acks.ts).
import type { OutgoingHttpHeaders } from 'node:http';
import type {
  Broker,
  EventInput,
  FramedEvent,
  IdempotencyRequest,
  PublishAnswer,
  Replay,
} from '../broker/broker.ts';
import { frameReset } from '../broker/framed-event.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { ServerMetrics } from '../metrics.ts';
import { noticeBody, Refusal } from '../refusals.ts';
import { encodeRetry } from '../wire/encode.ts';
import { Channel, payloadBytes } from './channel.ts';
import type { SseConnection } from './connection.ts';
import { PublishAcks } from './publish-acks.ts';
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

const ROUTE = '/sse/channels/:channel';

export class Hub {
  private readonly channels = new Map<string, Channel>();
  private readonly dirty = new Set<Channel>();
  private flushScheduled = false;
  private readonly broker: Broker;
  private readonly metrics: ServerMetrics;
  private readonly lifecycle: Lifecycle;
  private readonly retryChunk: Buffer;
  private readonly acks: PublishAcks;
  private readonly pump: ReplayPump;
  private readonly released = (ch: Channel) => this.release(ch);
  private expiryTimer: NodeJS.Timeout | null = null;

  constructor(broker: Broker, options: HubOptions, metrics: ServerMetrics, lifecycle: Lifecycle) {
    this.broker = broker;
    this.metrics = metrics;
    this.lifecycle = lifecycle;
    this.retryChunk = Buffer.from(encodeRetry(options.retryMs));
    this.acks = new PublishAcks(metrics, options.publishWaitMs);
    this.pump = new ReplayPump({
      written: (events, bytes) => {
        this.metrics.replayedEvents.inc(events);
        this.countSent(events, bytes);
      },
      done: (sub) => this.caughtUp(sub),
    });
    broker.setListener((channel, events) => this.receive(channel, events));
    broker.onChannelFault((channel, fault) => {
      if (fault !== null) this.closeChannel(channel, fault);
    });
    this.expiryTimer = setInterval(expiryTick, 1000, this);
    this.expiryTimer.unref();
  }

  /** Subscribers of a channel on this server. */
  subscriberCount(name: string): number {
    return this.channels.get(name)?.subscriberCount ?? 0;
  }

  /** Every channel with subscribers on this process, with their number (for GET /channels). */
  *localSubscribers(): IterableIterator<[string, number]> {
    for (const ch of this.channels.values()) {
      if (ch.subscriberCount > 0) yield [ch.name, ch.subscriberCount];
    }
  }

  /** The hub's channel, joined at the broker when new (the join may fail: see `ready`). */
  private channel(name: string): Channel {
    const known = this.channels.get(name);
    if (known !== undefined) return known;
    const ch = new Channel(name, this.released);
    this.channels.set(name, ch);
    ch.ready = this.broker.join(name).then(
      (position) => {
        ch.position = ch.flushed = position;
        ch.ready = null;
        this.release(ch); // its subscribers may all have gone while it joined
      },
      (err: unknown) => {
        ch.ready = null;
        this.release(ch);
        throw err;
      },
    );
    ch.ready.catch(() => {}); // awaited by the subscribers; handled there
    return ch;
  }

  /** Forgets a channel nothing uses any more, at once (it holds no slot of limits.maxChannels). */
  private release(ch: Channel): void {
    if (ch.subscriberCount > 0 || ch.pending.length > 0 || ch.ready !== null) return;
    if (this.acks.waiting(ch) || this.channels.get(ch.name) !== ch) return;
    this.channels.delete(ch.name);
    this.dirty.delete(ch);
    this.broker.leave(ch.name);
  }

  /**
   * Subscribes `conn` to channel `name`: headers, `retry:`, then (with a Last-Event-ID) an
   * explicit `reset` when the record cannot continue the id, and the events after it; then live
   * events. Replay and live events meet at the subscription's cursor: no gap and no duplicate at
   * the seam. Rejects, before anything was written, when the channel cannot be joined or
   * replayed.
   */
  async subscribe(
    conn: SseConnection,
    name: string,
    lastEventId: string | null,
    headers: OutgoingHttpHeaders,
  ): Promise<void> {
    if (this.lifecycle.draining) throw new DrainingError('the server is shutting down');
    const ch = this.channel(name);
    const sub = new Subscription(conn, ch);
    ch.add(sub);
    try {
      if (ch.ready !== null) await ch.ready;
      const replay = lastEventId === null ? null : await this.broker.replay(name, lastEventId);
      this.start(sub, replay, headers);
    } catch (err) {
      conn.owner = null;
      sub.streamClosed();
      throw err;
    }
  }

  /**
   * Writes headers, retry, the reset and the first page of the replay in one write. A longer
   * replay goes on page by page as the socket drains (the replay pump); the live events that
   * arrive meanwhile wait in the subscription's queue.
   */
  private start(sub: Subscription, replay: Replay | null, headers: OutgoingHttpHeaders): void {
    const conn = sub.conn;
    if (conn.ended || sub.left) return;
    const parts: Buffer[] = [this.retryChunk];
    let events: readonly FramedEvent[] = [];
    let resets = 0;
    if (replay !== null) {
      const { placement } = replay;
      sub.cursor = placement.after;
      if (placement.reset !== null) {
        const { reason, lastEventId } = placement.reset;
        parts.push(frameReset(reason, lastEventId, placement.after).payload);
        resets = 1;
      }
      events = replay.events;
    }
    const first = nextPage(events, 0, Math.min(REPLAY_PAGE_BYTES, conn.maxBufferedBytes));
    for (const p of first.parts) parts.push(p);
    if (first.next > 0) sub.cursor = events[first.next - 1]!;
    conn.sendHead(headers, parts);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    this.metrics.bytesSent.inc(bytes);
    if (resets + first.next > 0) this.metrics.eventsSent[ROUTE].inc(resets + first.next);
    if (first.next > 0) this.metrics.replayedEvents.inc(first.next);
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
    if (sub.conn.ended || sub.left) return;
    const written = sub.writeQueue();
    if (written.length > 0) this.countSent(written.length, payloadBytes(written));
    const ch = this.channels.get(sub.channel.name);
    if (ch !== undefined && ch.pending.length === 0) ch.promoteIfCaughtUp(sub);
  }

  private countSent(events: number, bytes: number): void {
    this.metrics.eventsSent[ROUTE].inc(events);
    this.metrics.bytesSent.inc(bytes);
  }

  /**
   * The broker cannot serve the channel (its Redis key holds another type): every subscriber
   * gets the `unavailable` notice with a retry and its stream ends; the channel is forgotten.
   */
  private closeChannel(name: string, why: string): void {
    const ch = this.channels.get(name);
    if (ch === undefined) return;
    const refusal = new Refusal('channel_unavailable', `channel ${name} is unavailable: ${why}`);
    for (const sub of [...ch.live, ...ch.joining]) {
      const notice = refusal.notice()!;
      if (sub.conn.opened) sub.conn.end(Buffer.from(noticeBody(notice)), 'error');
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
    if (this.lifecycle.draining) throw new DrainingError('the server is shutting down');
    const local = this.acks.begin(name, idempotency);
    if (local !== null) return { kind: local };
    try {
      const startedAt = performance.now();
      const outcome = await this.broker.publish(name, events, idempotency);
      if (outcome.kind !== 'published') {
        return outcome.kind === 'replayed' ? { kind: 'replayed', answer: outcome.answer } : outcome;
      }
      this.metrics.brokerPublishDuration.observe((performance.now() - startedAt) / 1000);
      this.metrics.eventsPublished.inc(outcome.ids.length);
      // A channel still joining does not know its live position yet: wait for it.
      const ch = this.channels.get(name);
      if (ch?.ready) await ch.ready.catch(() => {});
      const answer = await this.acks.answer(
        this.channels.get(name),
        outcome.ids,
        outcome.last,
        startedAt,
      );
      if (idempotency !== undefined) this.broker.settleIdempotent(name, idempotency.key, answer);
      return { kind: 'published', answer };
    } finally {
      this.acks.end(name, idempotency);
    }
  }

  /** Broker delivery: queue the events for this tick's flush (ignored for unknown channels). */
  private receive(name: string, events: readonly FramedEvent[]): void {
    const ch = this.channels.get(name);
    if (ch === undefined) return;
    ch.receive(events);
    this.dirty.add(ch);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushTick, this);
    }
  }

  /** Writes every channel's pending events: one chunk per channel, the same bytes to everyone. */
  flush(): void {
    this.flushScheduled = false;
    for (const ch of this.dirty) {
      const written = ch.flush();
      if (written.events > 0) this.countSent(written.events, written.bytes);
      this.acks.settle(ch);
      this.release(ch);
    }
    this.dirty.clear();
  }

  /** Answers publishes whose live delivery lags past publishWaitMs. */
  expire(): void {
    for (const ch of this.acks.expire()) this.release(ch);
  }

  /**
   * Shutdown, step one (the lifecycle is draining: publishes are refused): wait (until
   * `deadline`, Date.now() scale) for the accepted ones, which answer only once their events were
   * written to every local subscriber.
   */
  async drain(deadline: number): Promise<void> {
    await this.acks.drain(deadline);
    if (this.flushScheduled) this.flush();
  }

  close(): void {
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = null;
  }
}

function flushTick(hub: Hub): void {
  hub.flush();
}

function expiryTick(hub: Hub): void {
  hub.expire();
}
