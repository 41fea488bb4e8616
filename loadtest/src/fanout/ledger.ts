// What a subscriber worker counts, whichever receiver reads the streams (worker.ts: the project's
// client library; raw-worker.ts: raw sockets): per subscriber the seqs received (lost,
// duplicated), events whose server id is lower than one received before (out of order; ids
// compared as fanout/event-data.ts orderOfId reads them, not by seq: concurrent publishes reach
// the server in any order), and events whose data is not the publisher's shape (corrupted); per
// worker the delivery latency histogram and deliveries per second. Also the IPC loop both workers
// share: `measure`, `count` and `collect` are answered here, `open` and `close` by the receiver.
import * as hdr from 'hdr-histogram-js';
import { type DataShape, dataShape, type IdOrder, orderOfId } from './event-data.ts';
import { newLatencyHistogram } from './histogram.ts';
import { LoadMonitor } from './load-monitor.ts';
import type { WorkerReply, WorkerRequest, WorkerStats } from './protocol.ts';
import { SeqTracker } from './seq-tracker.ts';

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

  add(): LedgerSubscriber {
    const sub: LedgerSubscriber = {
      seqs: new SeqTracker(),
      duplicates: 0,
      outOfOrder: 0,
      corrupted: 0,
      opened: false,
      lastMs: -1,
      lastSeq: -1,
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
    if (req.type === 'open') return receiver.open(req.urls);
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
