// Stand-ins for unit tests of the SSE core without sockets: a stream that records what it was
// sent (and parses the SSE bytes back into events), and a broker whose record, live delivery and
// answers the test drives step by step.
import { EventEmitter } from 'node:events';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type {
  Broker,
  BrokerListener,
  EventInput,
  FramedEvent,
  PublishOutcome,
  Replay,
} from '../../services/server/src/broker/broker.ts';
import { type EventId, IdGenerator, ZERO_ID } from '../../services/server/src/broker/event-id.ts';
import { frameEvent } from '../../services/server/src/broker/framed-event.ts';
import { MemoryHistory } from '../../services/server/src/broker/memory-history.ts';
import { placeLastEventId } from '../../services/server/src/broker/resume.ts';
import { Lifecycle } from '../../services/server/src/lifecycle.ts';
import { createServerMetrics } from '../../services/server/src/metrics.ts';
import type { SseConnection, StreamOwner } from '../../services/server/src/sse/connection.ts';
import { Hub } from '../../services/server/src/sse/hub.ts';

/** A stream that records its bytes; `full` makes its transport report a full socket. */
export class FakeStream {
  readonly events: EventSourceMessage[] = [];
  readonly socket = new EventEmitter();
  owner: StreamOwner | null = null;
  opened = false;
  ended = false;
  destroyedFor: string | null = null;
  maxBufferedBytes = 1 << 20;
  lastWriteAt = 0;
  full = false;
  readonly route = '/sse/channels/:channel';
  private readonly parser = createParser({ onEvent: (e) => this.events.push(e) });
  readonly transport = {
    pending: () => 0,
    needsDrain: () => this.full,
    drainSource: () => this.socket,
  };

  /** The stream as the core sees it. */
  get conn(): SseConnection {
    return this as unknown as SseConnection;
  }

  private take(parts: readonly Buffer[]): boolean {
    if (this.ended) return false;
    for (const p of parts) this.parser.feed(p.toString('utf8'));
    return true;
  }

  sendHead(_headers: unknown, parts: readonly Buffer[] = []): void {
    this.opened = true;
    this.take(parts);
  }

  send(payload: Buffer): boolean {
    return this.take([payload]);
  }

  sendParts(parts: readonly Buffer[]): boolean {
    return this.take(parts);
  }

  end(last?: Buffer): void {
    if (last) this.take([last]);
    this.close();
  }

  destroy(reason: string): void {
    this.destroyedFor = reason;
    this.close();
  }

  /** The client went away: the owner is told, as the close path does. */
  close(): void {
    this.ended = true;
    const owner = this.owner;
    this.owner = null;
    owner?.streamClosed(this.conn);
  }

  /** Ids of the events received (resets included, as `reset:<id>`). */
  ids(): string[] {
    return this.events.map((e) => (e.event === 'reset' ? `reset:${e.id}` : e.id!));
  }
}

/** One channel's record in the scripted broker: what it holds, what was not delivered live yet. */
interface ScriptedRecord {
  readonly history: MemoryHistory;
  readonly undelivered: FramedEvent[];
  delivered: EventId;
}

/**
 * A broker whose records are memory rings and whose live delivery lags as the test says:
 * `append` puts events in a channel's record at once; `deliver(channel, n)` hands the next n of
 * them to the hub (as a Redis reader would, in order); `replay` answers from the record as it is
 * when called, but resolves only when the test calls `answerReplays()`.
 */
export class ScriptedBroker implements Broker {
  readonly type = 'memory';
  readonly up = true;
  readonly channelCount = 0;
  private listener: BrokerListener | null = null;
  private readonly ids = new IdGenerator(() => 1000);
  private readonly records = new Map<string, ScriptedRecord>();
  private readonly replays: (() => void)[] = [];

  setListener(listener: BrokerListener): void {
    this.listener = listener;
  }
  onStateChange(): void {}
  onChannelFault(): void {}
  start(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  settleIdempotent(): void {}
  leave(): void {}

  private record(channel: string): ScriptedRecord {
    let rec = this.records.get(channel);
    if (rec === undefined) {
      rec = { history: new MemoryHistory(10_000, 1 << 30), undelivered: [], delivered: ZERO_ID };
      this.records.set(channel, rec);
    }
    return rec;
  }

  /** The channel's record (what a replay reads). */
  history(channel: string): MemoryHistory {
    return this.record(channel).history;
  }

  /** Puts events in the channel's record (not yet delivered live). */
  append(events: readonly EventInput[], channel = 'seam'): FramedEvent[] {
    const rec = this.record(channel);
    const framed = events.map((e) => frameEvent(e, this.ids.next()));
    for (const f of framed) {
      rec.history.push(f);
      rec.undelivered.push(f);
    }
    return framed;
  }

  publish(channel: string, events: readonly EventInput[]): Promise<PublishOutcome> {
    const framed = this.append(events, channel);
    return Promise.resolve({
      kind: 'published',
      ids: framed.map((e) => e.id),
      last: framed[framed.length - 1]!,
    });
  }

  /** Delivers the channel's next `n` undelivered events live (all of them by default). */
  deliver(channel: string, n?: number): void {
    const rec = this.record(channel);
    const batch = rec.undelivered.splice(0, n ?? rec.undelivered.length);
    if (batch.length === 0) return;
    rec.delivered = batch[batch.length - 1]!;
    this.listener?.(channel, batch);
  }

  join(channel: string): Promise<EventId> {
    return Promise.resolve(this.record(channel).delivered);
  }

  replay(channel: string, lastEventId: string): Promise<Replay> {
    const history = this.record(channel).history;
    const placement = placeLastEventId(lastEventId, history);
    const events = history.after(placement.after);
    return new Promise((resolve) => this.replays.push(() => resolve({ placement, events })));
  }

  /** Resolves every replay asked for so far. */
  answerReplays(): void {
    for (const r of this.replays.splice(0)) r();
  }

  get replaysWaiting(): number {
    return this.replays.length;
  }
}

/** A hub over `broker` with defaults, its own metrics and lifecycle (close it after). */
export function hubOn(broker: Broker): Hub {
  return new Hub(
    broker,
    { retryMs: 1000, publishWaitMs: 5000 },
    createServerMetrics(() => 0),
    new Lifecycle(),
  );
}

/** Lets promise callbacks and setImmediate work (a flush tick, a pump tick) run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
