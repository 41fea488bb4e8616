// A subscriber worker (a child process of the fan-out coordinator): opens its share of the
// subscribers with the project's client library, counts every delivery per subscriber by the
// publisher's sequence number, and records delivery latency in an HDR histogram.
import * as hdr from 'hdr-histogram-js';
import { Agent } from 'undici';
import { connectEventStream, type EventStreamHandle } from '../../../services/client/src/index.ts';
import { publishTime, sequenceNumber } from './event-data.ts';
import { newLatencyHistogram } from './histogram.ts';
import { LoadMonitor } from './load-monitor.ts';
import type { WorkerReply, WorkerRequest, WorkerStats } from './protocol.ts';
import { SeqTracker } from './seq-tracker.ts';

interface Subscriber {
  handle: EventStreamHandle;
  seqs: SeqTracker;
  duplicates: number;
  /** Opened at least once (one that never did is reported as failed, not as losing events). */
  opened: boolean;
}

const subscribers: Subscriber[] = [];
const agent = new Agent({ connections: null, pipelining: 1, connectTimeout: 30_000 });
const errors: Record<string, number> = {};
const monitor = new LoadMonitor();
let histogram = newLatencyHistogram();
let measureFrom = Number.POSITIVE_INFINITY;
let measured = 0;
let perSecond = new Map<number, number>();
let firstArrival: number | null = null;
let lastArrival: number | null = null;

function onEvent(sub: Subscriber, data: string): void {
  const seq = sequenceNumber(data);
  if (!Number.isInteger(seq)) {
    errors.bad_event_data = (errors.bad_event_data ?? 0) + 1;
    return;
  }
  if (!sub.seqs.add(seq)) {
    sub.duplicates++;
    return;
  }
  const ts = publishTime(data);
  if (!(ts >= measureFrom)) return;
  const now = performance.timeOrigin + performance.now();
  histogram.recordValue(Math.max(1, Math.round((now - ts) * 1000)));
  measured++;
  const second = Math.floor(now / 1000);
  perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  firstArrival ??= now;
  lastArrival = now;
}

function openOne(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const sub: Subscriber = {
      handle: undefined as unknown as EventStreamHandle,
      seqs: new SeqTracker(),
      duplicates: 0,
      opened: false,
    };
    sub.handle = connectEventStream(url, {
      dispatcher: agent,
      onOpen: () => {
        sub.opened = true;
        if (settled) return;
        settled = true;
        resolve(true);
      },
      onError: (err) => {
        errors[err.reason] = (errors[err.reason] ?? 0) + 1;
        if (!settled) {
          settled = true;
          resolve(false);
        }
      },
      onEvent: (ev) => onEvent(sub, ev.data),
    });
    subscribers.push(sub);
  });
}

/** Subscribers opened per batch; the worker yields to its event loop between batches. */
const OPEN_BATCH = 250;

async function open(req: Extract<WorkerRequest, { type: 'open' }>): Promise<WorkerReply> {
  const { urls } = req;
  const opening: Promise<boolean>[] = [];
  for (let i = 0; i < urls.length; i += OPEN_BATCH) {
    for (let j = i; j < Math.min(urls.length, i + OPEN_BATCH); j++) opening.push(openOne(urls[j]!));
    await new Promise((r) => setImmediate(r));
  }
  const results = await Promise.all(opening);
  const opened = results.filter(Boolean).length;
  return { type: 'opened', opened, failed: results.length - opened, errors: { ...errors } };
}

function collect(req: Extract<WorkerRequest, { type: 'collect' }>): WorkerReply {
  // The publisher's rejected seqs all fall in the step's [from, to) (rig.ts collect).
  const { rejected } = req;
  const expectedEach = req.to - req.from - rejected.length;
  let deliveries = 0;
  let lost = 0;
  let duplicated = 0;
  const counted = subscribers.filter((s) => s.opened);
  for (const sub of counted) {
    let got = sub.seqs.countIn(req.from, req.to);
    for (const s of rejected) if (sub.seqs.has(s)) got--;
    deliveries += got;
    lost += Math.max(0, expectedEach - got);
    duplicated += sub.duplicates;
    sub.duplicates = 0;
    if (req.forget) sub.seqs.forget(req.to);
  }
  const stats: WorkerStats = {
    deliveries,
    measured,
    expected: expectedEach * counted.length,
    lost,
    duplicated,
    histogram: hdr.encodeIntoCompressedBase64(histogram),
    perSecond: [...perSecond],
    firstArrivalMs: firstArrival,
    lastArrivalMs: lastArrival,
    load: monitor.read(),
    errors: { ...errors },
  };
  histogram.destroy();
  histogram = newLatencyHistogram();
  measured = 0;
  perSecond = new Map();
  firstArrival = lastArrival = null;
  measureFrom = Number.POSITIVE_INFINITY;
  return { type: 'stats', stats };
}

async function handle(req: WorkerRequest): Promise<WorkerReply> {
  switch (req.type) {
    case 'open':
      return open(req);
    case 'measure':
      measureFrom = req.fromTs;
      monitor.reset();
      return { type: 'count', received: 0 };
    case 'count': {
      let received = 0;
      for (const sub of subscribers) received += sub.seqs.countIn(req.from, req.to);
      return { type: 'count', received };
    }
    case 'collect':
      return collect(req);
    case 'close':
      for (const sub of subscribers) sub.handle.close();
      await Promise.all(subscribers.map((s) => s.handle.done.catch(() => undefined)));
      await agent.close();
      monitor.stop();
      return { type: 'closed' };
  }
}

process.on('message', (req: WorkerRequest) => {
  handle(req).then(
    (reply) => {
      process.send?.(reply);
      if (reply.type === 'closed') process.disconnect();
    },
    (err: unknown) => {
      process.stderr.write(`loadtest worker: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
});
// The coordinator going away ends the worker too.
process.on('disconnect', () => process.exit(0));
