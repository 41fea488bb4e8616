// The fan-out hub: channels, their subscribers and history, and the write path
//   publish -> broker -> serialize once -> coalesce per tick -> one chunk -> every subscriber.
import type { OutgoingHttpHeaders } from 'node:http';
import type { Broker, BrokerEvent, EventInput } from '../broker/broker.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { ConnectionOwner, SseConnection } from './connection.ts';
import { encodeEvent, encodeRetry, frameChunk } from './encode.ts';
import { History, type StoredEvent } from './history.ts';

export interface HubOptions {
  historySize: number;
  historyTtlMs: number;
  retryMs: number;
}

export interface PublishResult {
  ids: number[];
  /** Local subscribers the events were written to. */
  subscribers: number;
}

interface Pending {
  id: number;
  payload: Buffer;
}

interface Waiter {
  lastId: number;
  startedAt: number; // performance.now()
  resolve: (result: PublishResult) => void;
  ids: number[];
}

class Channel {
  readonly name: string;
  readonly subscribers: SseConnection[] = [];
  readonly history: History;
  pending: Pending[] = [];
  waiters: Waiter[] = [];
  lastSentId = 0;
  lastSentCount = 0;
  idleSince = Date.now();

  constructor(name: string, historySize: number) {
    this.name = name;
    this.history = new History(historySize);
  }

  get unused(): boolean {
    return (
      this.subscribers.length === 0 &&
      this.history.size === 0 &&
      this.pending.length === 0 &&
      this.waiters.length === 0
    );
  }
}

const ROUTE = '/sse/channels/:channel';

export class Hub implements ConnectionOwner {
  private readonly channels = new Map<string, Channel>();
  private readonly dirty = new Set<Channel>();
  private flushScheduled = false;
  private readonly broker: Broker;
  private readonly options: HubOptions;
  private readonly metrics: ServerMetrics;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(broker: Broker, options: HubOptions, metrics: ServerMetrics) {
    this.broker = broker;
    this.options = options;
    this.metrics = metrics;
    broker.setListener((channel, events) => this.receive(channel, events));
    const every = Math.max(250, Math.min(30_000, Math.floor(options.historyTtlMs / 4)));
    this.sweepTimer = setInterval(sweepTick, every, this);
    this.sweepTimer.unref();
  }

  get channelCount(): number {
    return this.channels.size;
  }

  subscriberCount(name: string): number {
    return this.channels.get(name)?.subscribers.length ?? 0;
  }

  private channel(name: string): Channel {
    let ch = this.channels.get(name);
    if (ch === undefined) {
      ch = new Channel(name, this.options.historySize);
      this.channels.set(name, ch);
      this.broker.join(name);
    }
    return ch;
  }

  /**
   * Opens `conn` on channel `name`: headers, `retry:`, then the history after `lastEventId` (with
   * an explicit `reset` event when the history cannot cover the gap), all in one write; then live
   * events. Events still waiting for this tick's flush are not in the history yet and reach the
   * new subscriber through that flush, so the seam has no gap and no duplicate.
   */
  subscribe(
    conn: SseConnection,
    name: string,
    lastEventId: number | null,
    headers: OutgoingHttpHeaders,
  ): void {
    const ch = this.channel(name);
    const parts: Buffer[] = [Buffer.from(encodeRetry(this.options.retryMs))];
    let replayed = 0;
    let resets = 0;
    if (lastEventId !== null) {
      let after = lastEventId;
      const reset = resetEvent(ch.history, lastEventId);
      if (reset !== null) {
        parts.push(reset.payload);
        after = reset.cursor;
        resets = 1;
      }
      const events: StoredEvent[] = ch.history.after(after);
      for (const e of events) parts.push(e.payload);
      replayed = events.length;
    }
    conn.open(headers, parts);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    const m = this.metrics;
    m.bytesSent.inc(bytes);
    if (replayed > 0) m.replayedEvents.inc(replayed);
    // The explicit `reset` event is written to the subscriber too (a delivery, not a replay).
    if (replayed + resets > 0) m.eventsSent[ROUTE].inc(replayed + resets);
    conn.owner = this;
    conn.channel = ch;
    conn.slot = ch.subscribers.length;
    ch.subscribers.push(conn);
  }

  /** Forgets a closed subscriber (O(1): swap with the last). */
  detach(conn: SseConnection): void {
    const ch = conn.channel as Channel | null;
    if (ch === null || conn.slot < 0) return;
    const subs = ch.subscribers;
    const last = subs.pop()!;
    if (last !== conn) {
      subs[conn.slot] = last;
      last.slot = conn.slot;
    }
    conn.slot = -1;
    conn.channel = null;
    if (subs.length === 0) ch.idleSince = Date.now();
  }

  /** Publishes events; resolves once their bytes were handed to every local subscriber. */
  async publish(name: string, events: readonly EventInput[]): Promise<PublishResult> {
    const startedAt = performance.now();
    const ids = await this.broker.publish(name, events);
    this.metrics.eventsPublished.inc(ids.length);
    const lastId = ids[ids.length - 1]!;
    const ch = this.channel(name);
    if (ch.lastSentId >= lastId) {
      this.metrics.fanoutDuration.observe((performance.now() - startedAt) / 1000);
      return { ids, subscribers: ch.lastSentCount };
    }
    return new Promise<PublishResult>((resolve) => {
      ch.waiters.push({ lastId, startedAt, resolve, ids });
    });
  }

  /** Broker delivery: serialize each event once and queue it for this tick's flush. */
  private receive(name: string, events: readonly BrokerEvent[]): void {
    const ch = this.channel(name);
    for (const e of events) {
      ch.pending.push({ id: e.id, payload: Buffer.from(encodeEvent(e.data, e.event, e.id)) });
    }
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
      const payload =
        pending.length === 1 ? pending[0]!.payload : Buffer.concat(pending.map((p) => p.payload));
      const subs = ch.subscribers;
      let delivered = 0;
      if (subs.length > 0) {
        const chunk = frameChunk(payload);
        for (let i = 0; i < subs.length; i++) {
          const conn = subs[i]!;
          if (conn.writeChunk(chunk)) {
            conn.lastWriteAt = now;
            delivered++;
          }
        }
      }
      for (const p of pending) ch.history.push({ id: p.id, payload: p.payload, at: now });
      ch.lastSentId = pending[pending.length - 1]!.id;
      ch.lastSentCount = delivered;
      if (delivered > 0) {
        this.metrics.eventsSent[ROUTE].inc(delivered * pending.length);
        this.metrics.bytesSent.inc(delivered * payload.length);
      }
      if (ch.waiters.length > 0) this.settle(ch, delivered);
    }
    this.dirty.clear();
  }

  private settle(ch: Channel, delivered: number): void {
    const done = performance.now();
    const keep: Waiter[] = [];
    for (const w of ch.waiters) {
      if (w.lastId > ch.lastSentId) {
        keep.push(w);
        continue;
      }
      this.metrics.fanoutDuration.observe((done - w.startedAt) / 1000);
      w.resolve({ ids: w.ids, subscribers: delivered });
    }
    ch.waiters = keep;
  }

  /** Expires history and forgets channels with nothing left in them. */
  sweep(now = Date.now()): void {
    const ttl = this.options.historyTtlMs;
    for (const [name, ch] of this.channels) {
      ch.history.expire(now - ttl);
      if (ch.unused && now - ch.idleSince >= ttl) {
        this.channels.delete(name);
        this.broker.leave(name);
      }
    }
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }
}

/**
 * The explicit `reset` event for a Last-Event-ID the history cannot continue from: older than the
 * oldest event still held (events were lost to the client), or newer than anything this channel
 * sent (the server restarted or the id is foreign). Its `id` moves the client's cursor to just
 * before the events that follow (replay continues after it). Null when the history continues the id without a gap.
 */
function resetEvent(
  history: History,
  lastEventId: number,
): { payload: Buffer; cursor: number } | null {
  const oldest = history.oldestId;
  const latest = history.lastId;
  let reason: string;
  let cursor: number;
  if (lastEventId > latest) {
    reason = 'unknown_id';
    cursor = oldest === null ? latest : oldest - 1;
  } else if (oldest !== null && lastEventId < oldest - 1) {
    reason = 'history_exceeded';
    cursor = oldest - 1;
  } else if (oldest === null && lastEventId < latest) {
    reason = 'history_exceeded';
    cursor = latest;
  } else {
    return null;
  }
  const data = JSON.stringify({
    reason,
    lastEventId: String(lastEventId),
    resumeAfter: String(cursor),
  });
  return { payload: Buffer.from(encodeEvent(data, 'reset', cursor)), cursor };
}

function flushTick(hub: Hub): void {
  hub.flush();
}

function sweepTick(hub: Hub): void {
  hub.sweep();
}
