// The fan-out hub: the table of channels this server serves, and the fan-out ticks
//   publish -> broker (ids, record) -> receive -> ticks -> each channel's sweep (channel.ts)
// A tick runs the next slice of every busy channel's sweep (one write per live subscriber with
// every event it lacks), then yields to the event loop; ticks follow while a channel is busy.
// The broker keeps each channel's record (history); a channel lives here while it has
// subscribers, events waiting for the sweep, or publishes waiting for it (publish-acks.ts).
import type { OutgoingHttpHeaders } from 'node:http';
import type {
  Broker,
  EventInput,
  FramedEvent,
  IdempotencyRequest,
  PublishAnswer,
  Replay,
} from '../broker/broker.ts';
import { frameReset, payloadBytes } from '../broker/framed-event.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { ServerMetrics } from '../metrics.ts';
import { noticeBody, Refusal } from '../refusals.ts';
import { encodeEvent, encodeRetry } from '../wire/encode.ts';
import { Channel } from './channel.ts';
import type { SseConnection } from './connection.ts';
import { MultiStream, mergeById, type Outgoing } from './multi-stream.ts';
import { PublishAcks } from './publish-acks.ts';
import { ReplayImages } from './replay-image.ts';
import { nextPage, type Pumped, REPLAY_PAGE_BYTES, ReplayPump } from './replay-pump.ts';
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
/** Live subscribers one fan-out tick visits at most (one write each) before the event loop runs. */
const SWEEP_SLICE = 1000;
const STREAMS_ROUTE = '/sse/streams';
/**
 * The most bytes of shared replay images held at once (replay-image.ts): a storm from one point
 * needs one image; past this, replays go out event by event.
 */
const REPLAY_IMAGE_MAX_BYTES = 64 * 1024 * 1024;

export class Hub {
  private readonly channels = new Map<string, Channel>();
  private readonly dirty = new Set<Channel>();
  /** Several-channel streams with events collected this tick (written after every channel). */
  private dirtyStreams: MultiStream[] = [];
  private readonly streamHooks = { dirty: (m: MultiStream) => this.dirtyStreams.push(m) };
  private flushScheduled = false;
  private readonly broker: Broker;
  private readonly metrics: ServerMetrics;
  private readonly lifecycle: Lifecycle;
  private readonly retryChunk: Buffer;
  private readonly acks: PublishAcks;
  private readonly pump: ReplayPump;
  /** Long replays' bytes, shared by the streams replaying the same events (replay-image.ts). */
  readonly images = new ReplayImages(REPLAY_IMAGE_MAX_BYTES);
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
      done: (stream: Pumped) =>
        stream instanceof MultiStream
          ? this.streamCaughtUp(stream)
          : this.caughtUp(stream as Subscription),
    });
    broker.setListener((channel, events) => this.receive(channel, events));
    broker.onChannelFault((channel, fault) => {
      if (fault !== null) this.closeChannel(channel, fault);
    });
    this.expiryTimer = setInterval(expiryTick, 1000, this);
    this.expiryTimer.unref();
  }

  /** Subscribers of a channel on this server (GET /channels/:channel). */
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
    if (ch.subscriberCount > 0 || ch.busy || ch.ready !== null) return;
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
   * Subscribes `conn` to several channels at once (/sse/streams): one stream, one write per
   * tick. `positions`: each channel's position from the stream's cursor (absent: live from now);
   * `malformed`: the cursor could not be read, so the stream starts with one reset and every
   * channel replays what its history holds. Rejects before anything was written when a channel
   * cannot be joined or replayed.
   */
  async subscribeMany(
    conn: SseConnection,
    names: readonly string[],
    positions: ReadonlyMap<string, string>,
    malformed: string | null,
    headers: OutgoingHttpHeaders,
  ): Promise<void> {
    if (this.lifecycle.draining) throw new DrainingError('the server is shutting down');
    const stream = new MultiStream(conn, this.streamHooks);
    const slots = names.map((name) => {
      const ch = this.channel(name);
      const slot = stream.addSlot(ch);
      ch.addSlot(slot);
      return slot;
    });
    try {
      await Promise.all(slots.map((s) => (s.channel as Channel).ready));
      // A channel with nothing to replay starts live: its place in the cursor is its live
      // position now, so a resume continues after it instead of replaying older history.
      for (const slot of slots) {
        if (malformed === null && !positions.has(slot.channel.name)) {
          stream.setPosition(slot, (slot.channel as Channel).position);
        }
      }
      const replays = await Promise.all(
        slots.map((slot) => {
          const from = malformed ?? positions.get(slot.channel.name);
          return from === undefined ? null : this.broker.replay(slot.channel.name, from);
        }),
      );
      const lists: Outgoing[][] = [];
      replays.forEach((replay, i) => {
        if (replay === null) return;
        const slot = slots[i]!;
        const { placement, events } = replay;
        stream.setPosition(slot, placement.after);
        const list: Outgoing[] = [];
        if (placement.reset !== null && malformed === null) {
          const { reason, lastEventId } = placement.reset;
          list.push({ slot, event: frameReset(reason, lastEventId, placement.after) });
        }
        for (const event of events) list.push({ slot, event });
        lists.push(list);
      });
      this.startMany(stream, mergeById(lists), malformed, headers);
    } catch (err) {
      conn.owner = null;
      stream.streamClosed();
      throw err;
    }
  }

  /** Headers, retry, (a malformed cursor's reset,) the first page of the replay; then pumped. */
  private startMany(
    stream: MultiStream,
    backlog: Outgoing[],
    malformed: string | null,
    headers: OutgoingHttpHeaders,
  ): void {
    const conn = stream.conn;
    if (conn.ended) return;
    const parts: Buffer[] = [this.retryChunk];
    if (malformed !== null) parts.push(this.malformedReset(stream, malformed));
    stream.backlog = backlog.length > 0 ? backlog : null;
    const first = stream.firstPage(Math.min(REPLAY_PAGE_BYTES, conn.maxBufferedBytes));
    for (const p of first.parts) parts.push(p);
    conn.sendHead(headers, parts);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    this.metrics.bytesSent.inc(bytes);
    const sent = first.events + (malformed !== null ? 1 : 0);
    if (sent > 0) this.metrics.eventsSent[STREAMS_ROUTE].inc(sent);
    if (first.events > 0) this.metrics.replayedEvents.inc(first.events);
    if (stream.backlog !== null) this.pump.add(stream);
    else this.streamCaughtUp(stream);
  }

  /** The one reset of a stream whose cursor could not be read: every channel from its floor. */
  private malformedReset(stream: MultiStream, given: string): Buffer {
    const resumeAfter = stream.cursor();
    const data = JSON.stringify({
      reason: 'malformed_id',
      lastEventId: given.slice(0, 64),
      resumeAfter,
    });
    return Buffer.from(encodeEvent(JSON.stringify({ channel: null, data }), 'reset', resumeAfter));
  }

  /** A several-channel stream's replay is out: what queued meanwhile follows in one write. */
  private streamCaughtUp(stream: MultiStream): void {
    if (stream.conn.ended) return;
    const written = stream.flushOut();
    if (written.events > 0) {
      this.metrics.eventsSent[STREAMS_ROUTE].inc(written.events);
      this.metrics.bytesSent.inc(written.bytes);
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
    const pageBytes = Math.min(REPLAY_PAGE_BYTES, conn.maxBufferedBytes);
    if (longerThan(events, pageBytes)) {
      const hold = this.images.acquire(events);
      if (hold !== null) sub.useImage(hold);
    }
    const first = nextPage(events, 0, pageBytes, sub.image);
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
    sub.releaseImage();
    this.caughtUp(sub);
  }

  /** The replay is written: the live events queued meanwhile follow, then the shared chunk. */
  private caughtUp(sub: Subscription): void {
    if (sub.conn.ended || sub.left) return;
    const written = sub.writeQueue();
    if (written.length > 0) this.countSent(written.length, payloadBytes(written));
    const ch = this.channels.get(sub.channel.name);
    if (ch !== undefined && ch.fresh.length === 0) ch.promoteIfCaughtUp(sub);
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
    const conns = [...ch.live, ...ch.joining, ...ch.slots.map((s) => s.stream)].map((x) => x.conn);
    for (const conn of conns) {
      const notice = refusal.notice()!;
      if (conn.opened) conn.end(Buffer.from(noticeBody(notice)), 'error');
      else conn.destroy('error');
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

  /** Broker delivery: the events wait for the channel's sweep (ignored for unknown channels). */
  private receive(name: string, events: readonly FramedEvent[]): void {
    const ch = this.channels.get(name);
    if (ch === undefined) return;
    ch.receive(events);
    this.dirty.add(ch);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(flushTick, this);
  }

  /**
   * One tick of fan-out: each channel with events waiting sweeps on (at most SWEEP_SLICE live
   * subscribers in all this tick, one write each; the channels take turns); then each
   * several-channel stream that took events writes them in one write. Another tick follows,
   * after the event loop took what came meanwhile, while a channel still has work.
   */
  flush(): void {
    if (!this.flushScheduled) return;
    this.flushScheduled = false;
    const startedAt = performance.now();
    let budget = SWEEP_SLICE;
    const again: Channel[] = [];
    for (const ch of this.dirty) {
      if (budget <= 0) break;
      const step = ch.sweep(budget);
      budget -= step.visited;
      if (step.events > 0) this.countSent(step.events, step.bytes);
      this.acks.settle(ch);
      this.dirty.delete(ch);
      if (step.done) this.release(ch);
      else again.push(ch);
    }
    for (const ch of again) this.dirty.add(ch); // behind the ones this tick did not reach
    this.flushStreams();
    this.metrics.tickDuration.observe((performance.now() - startedAt) / 1000);
    if (this.dirty.size > 0) this.schedule();
  }

  private flushStreams(): void {
    if (this.dirtyStreams.length === 0) return;
    const streams = this.dirtyStreams;
    this.dirtyStreams = [];
    let events = 0;
    let bytes = 0;
    for (const stream of streams) {
      const written = stream.flushOut();
      events += written.events;
      bytes += written.bytes;
    }
    if (events > 0) {
      this.metrics.eventsSent[STREAMS_ROUTE].inc(events);
      this.metrics.bytesSent.inc(bytes);
    }
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
    while (this.flushScheduled) this.flush();
  }

  close(): void {
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = null;
  }
}

/** True when the events' bytes are more than `bytes` (the replay needs more than one page). */
function longerThan(events: readonly FramedEvent[], bytes: number): boolean {
  let total = 0;
  for (const e of events) {
    total += e.payload.length;
    if (total > bytes) return true;
  }
  return false;
}

function flushTick(hub: Hub): void {
  hub.flush();
}

function expiryTick(hub: Hub): void {
  hub.expire();
}
