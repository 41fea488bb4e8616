// What a subscriber worker counts, whichever receiver reads the streams (worker.ts: the project's
// client library; raw-worker.ts: raw sockets): per subscriber the seqs received (lost,
// duplicated), events whose server id is lower than one received before (out of order; ids
// compared as fanout/event-data.ts orderOfId reads them, not by seq: concurrent publishes reach
// the server in any order), and events whose data is not the publisher's shape (corrupted); per
// worker the delivery latency histogram and deliveries per second. Also the IPC loop both workers
// share: `measure`, `count` and `collect` are answered here, `open` and `close` by the receiver.
// Several-channel streams (`--channels-per-stream N` > 1, deliverOnChannel): every stream gets
// every seq, so lost and duplicated are counted by seq as on one channel; out of order is counted
// per channel, by each channel's own position in the stream's cursor (see deliverOnChannel).
import * as hdr from 'hdr-histogram-js';
import { type DataShape, dataShape, type IdOrder, orderOfId } from './event-data.ts';
import { newLatencyHistogram } from './histogram.ts';
import { LoadMonitor } from './load-monitor.ts';
import type { StreamChannelsSpec, WorkerReply, WorkerRequest, WorkerStats } from './protocol.ts';
import { SeqTracker } from './seq-tracker.ts';
import { CursorReader, channelHash, streamChannelNames } from './stream-envelope.ts';

export interface LedgerSubscriber {
  seqs: SeqTracker;
  duplicates: number;
  outOfOrder: number;
  corrupted: number;
  /** Opened at least once (one that never did is reported as failed, not as losing events). */
  opened: boolean;
  /** The highest event id received so far (-1: none, or ids that cannot be ordered). */
  lastMs: number;
  lastSeq: number;
  /** Several-channel streams: per channel, the highest position received (ms, seq; -1: none). */
  channelOrder: Float64Array | null;
  /** The raw receiver handed it events from the worker's shared stream (shared-stream.ts). */
  shared: boolean;
}

/** The channels of the workers' several-channel streams (null: one channel, its own route). */
export interface StreamChannels {
  prefix: string;
  names: string[];
  /** Each channel's hash, as the cursor names it. */
  hashes: number[];
  /** Index by name (the client library hands out the name). */
  byName: Map<string, number>;
}

const scratch: IdOrder = { ms: 0, seq: 0 };

export class DeliveryLedger {
  readonly subscribers: LedgerSubscriber[] = [];
  readonly errors: Record<string, number> = {};
  private readonly monitor = new LoadMonitor();
  private histogram = newLatencyHistogram();
  private measureFrom = Number.POSITIVE_INFINITY;
  private measured = 0;
  private perSecond = new Map<number, number>();
  private firstArrival: number | null = null;
  private lastArrival: number | null = null;
  /** The data's shape for the step's pad (null before the first `measure`: not checked). */
  shape: DataShape | null = null;
  /** Several-channel streams (set before `open`); null: each subscriber reads one channel. */
  streams: StreamChannels | null = null;
  private readonly cursors = new CursorReader();

  /** The streams' channels, before any subscriber is added. */
  useStreams(spec: StreamChannelsSpec | null): void {
    if (spec === null) {
      this.streams = null;
      return;
    }
    const names = streamChannelNames(spec.prefix, spec.count);
    this.streams = {
      prefix: spec.prefix,
      names,
      hashes: names.map(channelHash),
      byName: new Map(names.map((n, i) => [n, i])),
    };
  }

  add(): LedgerSubscriber {
    const sub: LedgerSubscriber = {
      seqs: new SeqTracker(),
      duplicates: 0,
      outOfOrder: 0,
      corrupted: 0,
      opened: false,
      lastMs: -1,
      lastSeq: -1,
      channelOrder:
        this.streams === null ? null : new Float64Array(this.streams.names.length * 2).fill(-1),
      shared: false,
    };
    this.subscribers.push(sub);
    return sub;
  }

  error(reason: string): void {
    this.errors[reason] = (this.errors[reason] ?? 0) + 1;
  }

  /**
   * One event: `seq` and `ts` read off its data, `intact` whether the data has the publisher's
   * shape, `id` the stream's last event id, `now` when it arrived (epoch ms).
   */
  deliver(
    sub: LedgerSubscriber,
    seq: number,
    ts: number,
    intact: boolean,
    id: string | undefined,
    now: number,
  ): void {
    if (id !== undefined && orderOfId(id, scratch)) {
      if (scratch.ms < sub.lastMs || (scratch.ms === sub.lastMs && scratch.seq < sub.lastSeq)) {
        sub.outOfOrder++;
      } else {
        sub.lastMs = scratch.ms;
        sub.lastSeq = scratch.seq;
      }
    }
    this.record(sub, seq, ts, intact, now);
  }

  /**
   * One event of a several-channel stream: `channel` the index of the channel its envelope names
   * (-1: no envelope of the stream's channels: corrupted), `cursor` its id. The order of events
   * across channels is not defined (each channel has its own ids), and by seq it is not defined
   * even within a channel (concurrent publishes reach the server in any order); so out of order
   * is counted per channel, by the channel's own id: its position in the cursor, which must not
   * go back from the highest this subscriber has of that channel. A cursor without the channel
   * (or unreadable) is corrupted.
   */
  deliverOnChannel(
    sub: LedgerSubscriber,
    channel: number,
    seq: number,
    ts: number,
    intact: boolean,
    cursor: string | undefined,
    now: number,
  ): void {
    const streams = this.streams!;
    if (channel < 0) {
      sub.corrupted++;
      this.error('bad_envelope');
      return;
    }
    if (cursor === undefined || !this.cursors.read(cursor, streams.hashes[channel]!, scratch)) {
      sub.corrupted++;
      this.error('unreadable_cursor');
      return;
    }
    const order = sub.channelOrder!;
    const at = channel * 2;
    if (scratch.ms < order[at]! || (scratch.ms === order[at] && scratch.seq < order[at + 1]!)) {
      sub.outOfOrder++;
    } else {
      order[at] = scratch.ms;
      order[at + 1] = scratch.seq;
    }
    this.record(sub, seq, ts, intact, now);
  }

  /** The event's seq (lost, duplicated) and, when measured, its delivery latency. */
  private record(
    sub: LedgerSubscriber,
    seq: number,
    ts: number,
    intact: boolean,
    now: number,
  ): void {
    if (!intact || !Number.isInteger(seq)) {
      sub.corrupted++;
      if (!Number.isInteger(seq)) this.error('bad_event_data');
      return;
    }
    if (!sub.seqs.add(seq)) {
      sub.duplicates++;
      return;
    }
    if (!(ts >= this.measureFrom)) return;
    this.histogram.recordValue(Math.max(1, Math.round((now - ts) * 1000)));
    this.measured++;
    const second = Math.floor(now / 1000);
    this.perSecond.set(second, (this.perSecond.get(second) ?? 0) + 1);
    this.firstArrival ??= now;
    this.lastArrival = now;
  }

  private collect(req: Extract<WorkerRequest, { type: 'collect' }>): WorkerReply {
    // The publisher's rejected seqs all fall in the step's [from, to) (rig.ts collect).
    const { rejected } = req;
    const expectedEach = req.to - req.from - rejected.length;
    let deliveries = 0;
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let corrupted = 0;
    const counted = this.subscribers.filter((s) => s.opened);
    for (const sub of counted) {
      let got = sub.seqs.countIn(req.from, req.to);
      for (const s of rejected) if (sub.seqs.has(s)) got--;
      deliveries += got;
      lost += Math.max(0, expectedEach - got);
      duplicated += sub.duplicates;
      outOfOrder += sub.outOfOrder;
      corrupted += sub.corrupted;
      sub.duplicates = sub.outOfOrder = sub.corrupted = 0;
      if (req.forget) sub.seqs.forget(req.to);
    }
    const stats: WorkerStats = {
      shared: counted.filter((s) => s.shared).length,
      deliveries,
      measured: this.measured,
      expected: expectedEach * counted.length,
      lost,
      duplicated,
      outOfOrder,
      corrupted,
      histogram: hdr.encodeIntoCompressedBase64(this.histogram),
      perSecond: [...this.perSecond],
      firstArrivalMs: this.firstArrival,
      lastArrivalMs: this.lastArrival,
      load: this.monitor.read(),
      errors: { ...this.errors },
    };
    this.histogram.destroy();
    this.histogram = newLatencyHistogram();
    this.measured = 0;
    this.perSecond = new Map();
    this.firstArrival = this.lastArrival = null;
    this.measureFrom = Number.POSITIVE_INFINITY;
    return { type: 'stats', stats };
  }

  /** `measure`, `count` and `collect`; null for the requests the receiver answers. */
  answer(req: WorkerRequest): WorkerReply | null {
    switch (req.type) {
      case 'measure':
        this.measureFrom = req.fromTs;
        this.shape = dataShape(req.payloadBytes);
        this.monitor.reset();
        return { type: 'count', received: 0 };
      case 'count': {
        let received = 0;
        for (const sub of this.subscribers) received += sub.seqs.countIn(req.from, req.to);
        return { type: 'count', received };
      }
      case 'collect':
        return this.collect(req);
      default:
        return null;
    }
  }

  stop(): void {
    this.monitor.stop();
  }
}

/** What a receiver does itself: open its share of the subscribers, and close them all. */
export interface Receiver {
  open(urls: string[]): Promise<WorkerReply>;
  close(): Promise<void>;
}

/**
 * The worker's IPC loop: requests answered in order, `closed` then disconnect; an error ends the
 * process (the rig reports it with the worker's stderr).
 */
export function serveWorker(ledger: DeliveryLedger, receiver: Receiver, name: string): void {
  const handle = async (req: WorkerRequest): Promise<WorkerReply> => {
    if (req.type === 'open') {
      ledger.useStreams(req.streams);
      return receiver.open(req.urls);
    }
    if (req.type === 'close') {
      await receiver.close();
      ledger.stop();
      return { type: 'closed' };
    }
    return ledger.answer(req)!;
  };
  process.on('message', (req: WorkerRequest) => {
    handle(req).then(
      (reply) => {
        process.send?.(reply);
        if (reply.type === 'closed') process.disconnect();
      },
      (err: unknown) => {
        process.stderr.write(`loadtest ${name}: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  });
  // The coordinator going away ends the worker too.
  process.on('disconnect', () => process.exit(0));
}
