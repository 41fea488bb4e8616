// The in-process broker: one process, history in memory. Ids come from one clock-based generator
// (`<ms>-<seq>`, as Redis makes them), delivery is a direct call to this process's hub.
import {
  type Broker,
  type BrokerListener,
  type BrokerStateListener,
  type ChannelFaultListener,
  ChannelLimitError,
  type EventInput,
  type FramedEvent,
  type IdempotencyRequest,
  type PublishAnswer,
  type PublishOutcome,
  type Replay,
} from './broker.ts';
import { type EventId, IdGenerator } from './event-id.ts';
import { frameEvent } from './framed-event.ts';
import { IdempotencyStore } from './idempotency-store.ts';
import { MemoryHistory } from './memory-history.ts';
import { placeLastEventId } from './resume.ts';

export interface MemoryBrokerOptions {
  historySize: number;
  historyMaxBytes: number;
  historyTtlMs: number;
  maxChannels: number;
  idempotency: { ttlMs: number; maxKeys: number; maxBytes: number; leaseMs: number };
}

/** What the channel API shows of a channel's record here (see channels/directory.ts). */
export interface RecordFacts {
  readonly name: string;
  /** Events held for replay. */
  readonly historyLength: number;
  /** The newest id given to an event of the channel, or null. */
  readonly last: EventId | null;
}

interface ChannelRecord {
  readonly history: MemoryHistory;
  joined: boolean;
}

export class MemoryBroker implements Broker {
  readonly type = 'memory';
  readonly up = true;
  private listener: BrokerListener | null = null;
  private readonly records = new Map<string, ChannelRecord>();
  private readonly ids: IdGenerator;
  private readonly options: MemoryBrokerOptions;
  private readonly keys: IdempotencyStore;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(options: MemoryBrokerOptions, now: () => number = Date.now) {
    this.options = options;
    this.ids = new IdGenerator(now);
    this.keys = new IdempotencyStore(options.idempotency, now);
  }

  setListener(listener: BrokerListener): void {
    this.listener = listener;
  }

  onStateChange(_listener: BrokerStateListener): void {
    // Always up.
  }

  onChannelFault(_listener: ChannelFaultListener): void {
    // Every channel is served.
  }

  start(): Promise<void> {
    const every = Math.max(250, Math.min(30_000, Math.floor(this.options.historyTtlMs / 4)));
    this.sweepTimer ??= setInterval(sweepTick, every, this);
    this.sweepTimer.unref();
    return Promise.resolve();
  }

  private record(channel: string): ChannelRecord {
    let rec = this.records.get(channel);
    if (rec === undefined) {
      if (this.records.size >= this.options.maxChannels) {
        throw new ChannelLimitError(this.options.maxChannels);
      }
      const { historySize, historyMaxBytes } = this.options;
      rec = { history: new MemoryHistory(historySize, historyMaxBytes), joined: false };
      this.records.set(channel, rec);
    }
    return rec;
  }

  publish(
    channel: string,
    events: readonly EventInput[],
    idempotency?: IdempotencyRequest,
  ): Promise<PublishOutcome> {
    const used = idempotency === undefined ? null : this.keys.check(channel, idempotency);
    if (used !== null) return Promise.resolve(used);
    let rec: ChannelRecord;
    try {
      rec = this.record(channel);
    } catch (err) {
      return Promise.reject(err);
    }
    const out: FramedEvent[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const framed = frameEvent(events[i]!, this.ids.next());
      rec.history.push(framed);
      out[i] = framed;
    }
    const ids = out.map((e) => e.id);
    if (idempotency !== undefined) this.keys.add(channel, idempotency, ids);
    this.listener?.(channel, out);
    return Promise.resolve({ kind: 'published', ids, last: out[out.length - 1]! });
  }

  settleIdempotent(channel: string, key: string, answer: PublishAnswer): void {
    this.keys.settle(channel, key, answer);
  }

  replay(channel: string, lastEventId: string): Promise<Replay> {
    const history = this.records.get(channel)?.history;
    if (history === undefined) {
      const placement = placeLastEventId(lastEventId, {
        oldest: null,
        last: null,
        maxDeleted: null,
      });
      return Promise.resolve({ placement, events: [] });
    }
    const placement = placeLastEventId(lastEventId, history);
    return Promise.resolve({ placement, events: history.after(placement.after) });
  }

  join(channel: string): Promise<EventId> {
    let rec: ChannelRecord;
    try {
      rec = this.record(channel);
    } catch (err) {
      return Promise.reject(err);
    }
    rec.joined = true;
    return Promise.resolve(this.ids.last);
  }

  leave(channel: string): void {
    const rec = this.records.get(channel);
    if (rec === undefined) return;
    rec.joined = false;
    if (rec.history.size === 0) this.records.delete(channel);
  }

  /** Every channel this process keeps a record for (history, or subscribers here), unordered. */
  *channelRecords(): IterableIterator<RecordFacts> {
    for (const [name, rec] of this.records) {
      yield { name, historyLength: rec.history.size, last: rec.history.last };
    }
  }

  /** One channel's record here, or null. */
  channelRecord(name: string): RecordFacts | null {
    const rec = this.records.get(name);
    return rec === undefined
      ? null
      : { name, historyLength: rec.history.size, last: rec.history.last };
  }

  /** Expires history older than historyTtlMs; forgets channels with no subscribers and no events. */
  sweep(now = Date.now()): void {
    const before = now - this.options.historyTtlMs;
    this.keys.sweep();
    for (const [name, rec] of this.records) {
      rec.history.expire(before);
      if (!rec.joined && rec.history.size === 0) this.records.delete(name);
    }
  }

  close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.listener = null;
    return Promise.resolve();
  }
}

function sweepTick(broker: MemoryBroker): void {
  broker.sweep();
}
