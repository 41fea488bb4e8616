// The fan-out hub: channels, their subscribers and the write path
//   publish -> broker (ids, record) -> listener -> coalesce per tick -> one chunk -> every subscriber.
// The broker keeps each channel's record (history); the hub keeps only what fan-out needs.
import type { OutgoingHttpHeaders } from 'node:http';
import type { Broker, EventInput, FramedEvent, Replay } from '../broker/broker.ts';
import { compareIds, type EventId, formatEventId, ZERO_ID } from '../broker/event-id.ts';
import type { Placement } from '../broker/resume.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { ConnectionOwner, SseConnection } from './connection.ts';
import { encodeEvent, encodeRetry, frameChunk } from './encode.ts';
import { Subscription } from './subscription.ts';

export interface HubOptions {
  retryMs: number;
  /** A channel with no subscribers is forgotten (and left at the broker) after this long. */
  channelIdleMs: number;
  /** Longest a publish waits for its events to reach this process's subscribers. */
  publishWaitMs: number;
}

export interface PublishResult {
  ids: string[];
  /** Local subscribers the events were written to. */
  subscribers: number;
}

/** Publishing or subscribing is refused for now (shutting down): 503 with Retry-After. */
export class DrainingError extends Error {
  override name = 'DrainingError';
}

interface Waiter {
  last: EventId;
  ids: string[];
  startedAt: number; // performance.now()
  resolve: (result: PublishResult) => void;
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
  idleSince = Date.now();

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
  private sweepTimer: NodeJS.Timeout | null = null;
  private inflight = 0;
  /** Set at shutdown: publishes are refused, accepted ones are still delivered. */
  draining = false;

  constructor(broker: Broker, options: HubOptions, metrics: ServerMetrics) {
    this.broker = broker;
    this.options = options;
    this.metrics = metrics;
    this.retryChunk = Buffer.from(encodeRetry(options.retryMs));
    broker.setListener((channel, events) => this.receive(channel, events));
    this.sweepTimer = setInterval(sweepTick, 1000, this);
    this.sweepTimer.unref();
  }

  subscriberCount(name: string): number {
    return this.channels.get(name)?.subscriberCount ?? 0;
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
        },
        (err: unknown) => {
          if (this.channels.get(name) === created) this.channels.delete(name);
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
      this.open(ch, sub, replay, headers);
      return;
    }
    return replay.then(
      (r) => this.open(ch, sub, r, headers),
      (err: unknown) => this.abandon(sub, err),
    );
  }

  /** A subscription whose join or replay failed: forget it and pass the error on. */
  private abandon(sub: Subscription, err: unknown): never {
    this.detach(sub.conn);
    throw err;
  }

  /** Writes headers, retry, reset, replay and queued live events in one write. */
  private open(
    ch: Channel,
    sub: Subscription,
    replay: Replay | null,
    headers: OutgoingHttpHeaders,
  ) {
    const conn = sub.conn;
    if (conn.ended || sub.slot < 0) return;
    const parts: Buffer[] = [this.retryChunk];
    let deliveries = 0;
    if (replay !== null) {
      const { placement, events } = replay;
      sub.cursor = placement.after;
      if (placement.reset !== null) {
        parts.push(resetPayload(placement));
        deliveries++;
      }
      for (const e of events) parts.push(e.payload);
      if (events.length > 0) {
        sub.cursor = events[events.length - 1]!;
        this.metrics.replayedEvents.inc(events.length);
        deliveries += events.length;
      }
    }
    for (const e of sub.queue) {
      if (sub.cursor !== null && compareIds(e, sub.cursor) <= 0) continue;
      parts.push(e.payload);
      sub.cursor = e;
      deliveries++;
    }
    sub.queue = [];
    sub.queuedBytes = 0;
    conn.open(headers, parts);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    this.metrics.bytesSent.inc(bytes);
    if (deliveries > 0) this.metrics.eventsSent[ROUTE].inc(deliveries);
    if (ch.pending.length === 0) this.goLiveIfCaughtUp(ch, sub);
  }

  /** Moves a joined subscriber to the shared chunk once nothing newer than it can be missed. */
  private goLiveIfCaughtUp(ch: Channel, sub: Subscription): void {
    if (sub.cursor !== null && compareIds(sub.cursor, ch.position) > 0) return;
    removeAt(ch.joining, sub);
    sub.state = 'live';
    sub.slot = ch.live.length;
    ch.live.push(sub);
  }

  /** Forgets a closed subscriber (O(1): swap with the last). */
  detach(conn: SseConnection): void {
    const sub = conn.subscription;
    if (sub === null || sub.slot < 0) return;
    const ch = this.channels.get(sub.channel);
    if (ch !== undefined) {
      removeAt(sub.state === 'live' ? ch.live : ch.joining, sub);
      if (ch.subscriberCount === 0) ch.idleSince = Date.now();
    }
    sub.slot = -1;
    sub.queue = [];
    conn.subscription = null;
  }

  /**
   * Publishes events; resolves once they are in the broker's record and their bytes were handed
   * to every local subscriber (or after publishWaitMs, should live delivery lag that long).
   */
  async publish(name: string, events: readonly EventInput[]): Promise<PublishResult> {
    if (this.draining) throw new DrainingError('the server is shutting down');
    this.inflight++;
    try {
      const startedAt = performance.now();
      const published = await this.broker.publish(name, events);
      this.metrics.brokerPublishDuration.observe((performance.now() - startedAt) / 1000);
      this.metrics.eventsPublished.inc(published.length);
      const ids = published.map((e) => e.id);
      const ch = this.channels.get(name);
      const last = published[published.length - 1]!;
      // Already handed out (to flushedTo subscribers), or nobody here to hand it to: answer now.
      const handedOut = ch !== undefined && compareIds(ch.flushed, last) >= 0;
      if (handedOut || ch === undefined || ch.subscriberCount === 0) {
        this.metrics.fanoutDuration.observe((performance.now() - startedAt) / 1000);
        return { ids, subscribers: handedOut ? ch.flushedTo : 0 };
      }
      return await new Promise<PublishResult>((resolve) => {
        ch.waiters.push({ last, ids, startedAt, resolve });
      });
    } finally {
      this.inflight--;
    }
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
        const [e, b, d] = this.flushJoining(ch, pending, now);
        events += e;
        bytes += b;
        delivered += d;
      }
      ch.flushed = pending[pending.length - 1]!;
      ch.flushedTo = delivered;
      if (events > 0) {
        this.metrics.eventsSent[ROUTE].inc(events);
        this.metrics.bytesSent.inc(bytes);
      }
      if (ch.waiters.length > 0) this.settle(ch);
    }
    this.dirty.clear();
  }

  /**
   * Joining subscribers take only the pending events after their cursor: queued until their
   * stream opens, written once it has. Returns [events, bytes, subscribers written to].
   */
  private flushJoining(ch: Channel, pending: FramedEvent[], now: number): [number, number, number] {
    let events = 0;
    let bytes = 0;
    let written = 0;
    for (const sub of [...ch.joining]) {
      const conn = sub.conn;
      const fresh =
        sub.cursor === null ? pending : pending.filter((e) => compareIds(e, sub.cursor!) > 0);
      if (!conn.opened) {
        for (const e of fresh) {
          sub.queue.push(e);
          sub.queuedBytes += e.payload.length;
        }
        if (sub.queuedBytes > conn.maxBufferedBytes) conn.destroy('slow_consumer');
        continue;
      }
      if (fresh.length > 0) {
        const payload =
          fresh.length === 1 ? fresh[0]!.payload : Buffer.concat(fresh.map((e) => e.payload));
        if (!conn.send(payload)) continue;
        conn.lastWriteAt = now;
        sub.cursor = fresh[fresh.length - 1]!;
        events += fresh.length;
        bytes += payload.length;
        written++;
      }
      this.goLiveIfCaughtUp(ch, sub);
    }
    return [events, bytes, written];
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

  /** Forgets idle channels; answers publishes whose live delivery lags past publishWaitMs. */
  sweep(now = Date.now()): void {
    const late = performance.now() - this.options.publishWaitMs;
    for (const [name, ch] of this.channels) {
      if (ch.waiters.length > 0 && ch.waiters[0]!.startedAt < late) {
        const keep: Waiter[] = [];
        for (const w of ch.waiters) {
          if (w.startedAt < late) w.resolve({ ids: w.ids, subscribers: 0 });
          else keep.push(w);
        }
        ch.waiters = keep;
      }
      if (ch.unused && ch.ready === null && now - ch.idleSince >= this.options.channelIdleMs) {
        this.channels.delete(name);
        this.broker.leave(name);
      }
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

/** The explicit `reset` event: why the history cannot continue the client's id, where it resumes. */
function resetPayload(placement: Placement): Buffer {
  const resumeAfter = formatEventId(placement.after);
  const data = JSON.stringify({
    reason: placement.reset!.reason,
    lastEventId: placement.reset!.lastEventId,
    resumeAfter,
  });
  return Buffer.from(encodeEvent(data, 'reset', resumeAfter));
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
