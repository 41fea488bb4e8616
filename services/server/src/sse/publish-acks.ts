// When a publish may answer: once its own ids went through a flush of the channel here (then they
// were handed to every local subscriber), or after publishWaitMs should live delivery lag that
// long. Also the publishes under way (shutdown waits for them) and the idempotency keys of those
// publishes, so a repeat of one answers "in flight" without asking the broker.

import type { IdempotencyRequest, PublishAnswer } from '../broker/broker.ts';
import type { EventId } from '../broker/event-id.ts';
import { compareIds } from '../broker/event-id.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { Channel } from './channel.ts';

interface Waiter {
  last: EventId;
  ids: readonly string[];
  startedAt: number; // performance.now()
  resolve: (answer: PublishAnswer) => void;
}

export class PublishAcks {
  private readonly waiters = new Map<Channel, Waiter[]>();
  /** Idempotency keys (channel NUL key) of the publishes under way here -> their fingerprint. */
  private readonly keys = new Map<string, string>();
  private readonly metrics: ServerMetrics;
  private readonly waitMs: number;
  private underWay = 0;

  constructor(metrics: ServerMetrics, waitMs: number) {
    this.metrics = metrics;
    this.waitMs = waitMs;
  }

  /**
   * A publish begins. With an idempotency key already under way here it must not: the answer is
   * 'in_flight' (the same body) or 'key_reused' (another body); null when it may go on.
   */
  begin(channel: string, idempotency?: IdempotencyRequest): 'in_flight' | 'key_reused' | null {
    if (idempotency !== undefined) {
      const name = `${channel}\0${idempotency.key}`;
      const fingerprint = this.keys.get(name);
      if (fingerprint !== undefined) {
        return fingerprint === idempotency.fingerprint ? 'in_flight' : 'key_reused';
      }
      this.keys.set(name, idempotency.fingerprint);
    }
    this.underWay++;
    return null;
  }

  /** The publish that began (and got null) has answered. */
  end(channel: string, idempotency?: IdempotencyRequest): void {
    this.underWay--;
    if (idempotency !== undefined) this.keys.delete(`${channel}\0${idempotency.key}`);
  }

  /**
   * The answer for events whose last id is `last`: now, when the channel's flushes already
   * passed it or nobody here can receive it; else once a flush passes it.
   */
  answer(
    ch: Channel | undefined,
    ids: readonly string[],
    last: EventId,
    startedAt: number,
  ): PublishAnswer | Promise<PublishAnswer> {
    const handedOut = ch !== undefined && compareIds(ch.flushed, last) >= 0;
    if (handedOut || ch === undefined || ch.subscriberCount === 0) {
      this.metrics.fanoutDuration.observe((performance.now() - startedAt) / 1000);
      return { ids, subscribers: handedOut ? ch.flushedTo : 0 };
    }
    return new Promise<PublishAnswer>((resolve) => {
      const waiter = { last, ids, startedAt, resolve };
      const list = this.waiters.get(ch);
      if (list === undefined) this.waiters.set(ch, [waiter]);
      else list.push(waiter);
    });
  }

  /** True while publishes wait for this channel's flushes. */
  waiting(ch: Channel): boolean {
    return this.waiters.has(ch);
  }

  /** After a flush of the channel: answers every publish whose last id it passed. */
  settle(ch: Channel): void {
    const list = this.waiters.get(ch);
    if (list === undefined) return;
    const done = performance.now();
    const keep: Waiter[] = [];
    for (const w of list) {
      if (compareIds(w.last, ch.flushed) > 0) {
        keep.push(w);
        continue;
      }
      this.metrics.fanoutDuration.observe((done - w.startedAt) / 1000);
      w.resolve({ ids: w.ids, subscribers: ch.flushedTo });
    }
    this.store(ch, keep);
  }

  /** Answers (to no subscribers) the publishes waiting longer than publishWaitMs; returns the
   *  channels that no longer have any waiting. */
  expire(): Channel[] {
    const late = performance.now() - this.waitMs;
    const cleared: Channel[] = [];
    for (const [ch, list] of this.waiters) {
      if (list[0]!.startedAt >= late) continue;
      const keep: Waiter[] = [];
      for (const w of list) {
        if (w.startedAt < late) w.resolve({ ids: w.ids, subscribers: 0 });
        else keep.push(w);
      }
      this.store(ch, keep);
      if (keep.length === 0) cleared.push(ch);
    }
    return cleared;
  }

  private store(ch: Channel, list: Waiter[]): void {
    if (list.length === 0) this.waiters.delete(ch);
    else this.waiters.set(ch, list);
  }

  /** Waits (until `deadline`, Date.now() scale) for the publishes under way to answer. */
  async drain(deadline: number): Promise<void> {
    while (this.underWay > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
