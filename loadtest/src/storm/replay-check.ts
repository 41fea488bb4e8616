// What a storm subscriber must get, and how it is checked. The history's event `seq` has the data
// `{"seq":<seq>,"pad":"xx…"}` (about `eventBytes` long, the same bytes for every subscriber), so
// each replayed event is compared byte for byte with what was published (data and id), without
// decoding or JSON.parse: the seq is read off the bytes with fanout/event-data.ts. Seq 0 is the event whose id every
// subscriber sends as Last-Event-ID; the replay must bring seqs 1..K, each once, in order.
import { sequenceNumberIn } from '../fanout/event-data.ts';

/** The data of history event `seq`, padded to about `eventBytes` (never shorter than the JSON). */
export function historyData(seq: number, eventBytes: number): string {
  const bare = `{"seq":${seq},"pad":""}`;
  return `{"seq":${seq},"pad":"${'x'.repeat(Math.max(0, eventBytes - bare.length))}"}`;
}

/** Every history event's id and data by seq (index 0: the Last-Event-ID's event). */
export interface ReplayExpectation {
  ids: readonly string[];
  data: readonly Buffer[];
}

export function replayExpectation(ids: readonly string[], eventBytes: number): ReplayExpectation {
  return { ids, data: ids.map((_, seq) => Buffer.from(historyData(seq, eventBytes))) };
}

/** One subscriber's replay: which seqs arrived, and what was wrong with the rest. */
export class ReplayCheck {
  private readonly expect: ReplayExpectation;
  private readonly seen: Uint8Array;
  /** The events the replay must bring (K). */
  readonly wanted: number;
  /** Distinct seqs received (1..K). */
  distinct = 0;
  /** Events received again, or the Last-Event-ID's own event. */
  duplicated = 0;
  /** Events that arrived after one with a higher id. */
  outOfOrder = 0;
  /** Events whose data or id differ from what was published (or of another event name). */
  corrupted = 0;
  private highest = 0;

  constructor(expect: ReplayExpectation) {
    this.expect = expect;
    this.wanted = expect.ids.length - 1;
    this.seen = new Uint8Array(expect.ids.length);
  }

  /** One replayed event (id and data as received). */
  add(id: string | undefined, data: Buffer): void {
    const seq = sequenceNumberIn(data);
    if (
      !(seq <= this.wanted) ||
      id !== this.expect.ids[seq] ||
      !data.equals(this.expect.data[seq]!)
    ) {
      this.corrupted++;
      return;
    }
    if (seq === 0 || this.seen[seq] === 1) {
      this.duplicated++;
      return;
    }
    this.seen[seq] = 1;
    this.distinct++;
    if (seq < this.highest) this.outOfOrder++;
    else this.highest = seq;
  }

  /**
   * Every event received once, in order: what a body identical to a verified reference holds
   * (reference-replay.ts; only from a state with nothing wrong so far).
   */
  receivedAll(): void {
    this.seen.fill(1, 1);
    this.distinct = this.wanted;
    this.highest = this.wanted;
  }

  /** Nothing wrong so far: every seq up to the highest received once, in order. */
  get clean(): boolean {
    return (
      this.distinct === this.highest && this.duplicated + this.outOfOrder + this.corrupted === 0
    );
  }

  /** The highest seq received. */
  get highestSeq(): number {
    return this.highest;
  }

  get complete(): boolean {
    return this.distinct === this.wanted;
  }

  /**
   * Events lost: the seqs missing below the highest one received (a gap), or, when the server
   * ended the stream as complete, every one missing.
   */
  lost(endedByServer: boolean): number {
    return (endedByServer ? this.wanted : this.highest) - this.distinct;
  }
}
