// The publisher (a child process of the fan-out coordinator), open loop like wrk2: event `seq` is
// due at startAt + (seq - startSeq) / rate and is sent then, whether or not earlier publishes
// were answered. At most `concurrency` publishes are in flight; a publish due while that many are
// pending is skipped (and counted), so a slow server or a slow harness shows up as an achieved
// rate below the offered one instead of a silently stretched schedule. With several channels
// (`--channels-per-stream N`), `rate` is all channels' together and seq n goes to channel n % N:
// round-robin, so the publishes due in a tick are spread over the channels and each gets rate / N.

import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';
import { eventData } from './event-data.ts';
import { newLatencyHistogram } from './histogram.ts';
import { LoadMonitor } from './load-monitor.ts';
import type { PublishRequest, PublishResult } from './protocol.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The step's seqs, [startSeq, endSeq); those from `measuredFrom` on fall after the warm-up. */
function schedule(req: PublishRequest) {
  const total = Math.round((req.rate * (req.warmupMs + req.durationMs)) / 1000);
  return {
    measuredFrom: req.startSeq + Math.round((req.rate * req.warmupMs) / 1000),
    endSeq: req.startSeq + total,
  };
}

/** The publishes so far, counted as they are sent, skipped and answered. */
interface Tally {
  accepted: number;
  /** Accepted publishes of seqs in the measured window. */
  acceptedMeasured: number;
  skipped: number;
  failed: number;
  /** Seqs skipped or not answered 202. */
  rejected: number[];
  errors: Record<string, number>;
  /** The publishes in flight (its size is checked against the concurrency bound). */
  pending: Set<Promise<void>>;
}

const newTally = (): Tally => ({
  accepted: 0,
  acceptedMeasured: 0,
  skipped: 0,
  failed: 0,
  rejected: [],
  errors: {},
  pending: new Set(),
});

function countFailure(tally: Tally, seq: number, reason: string): void {
  tally.failed++;
  tally.rejected.push(seq);
  tally.errors[reason] = (tally.errors[reason] ?? 0) + 1;
}

/**
 * A function that publishes one seq (to the targets round-robin) and counts its answer, with
 * its latency when the seq is measured. Everything per step is built once, here.
 */
function sender(
  req: PublishRequest,
  pools: Pool[],
  measuredFrom: number,
  histogram: hdr.Histogram,
  tally: Tally,
): (seq: number) => void {
  const pad = 'x'.repeat(req.payloadBytes);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (req.token) headers.authorization = `Bearer ${req.token}`;
  const paths = req.channels.map((c) => `/channels/${encodeURIComponent(c)}/events`);
  return (seq) => {
    const started = performance.now();
    const ts = performance.timeOrigin + started;
    // Each channel's publishes alternate over the targets (seq % targets with one channel).
    const pool = pools[Math.floor(seq / paths.length) % pools.length]!;
    const p = pool
      .request({
        path: paths[seq % paths.length]!,
        method: 'POST',
        headers,
        body: JSON.stringify({ data: eventData(ts, seq, pad) }),
      })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode === 202) {
          tally.accepted++;
          if (seq >= measuredFrom) {
            tally.acceptedMeasured++;
            histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)));
          }
        } else countFailure(tally, seq, `http_${res.statusCode}`);
      })
      .catch((err: unknown) => countFailure(tally, seq, (err as { code?: string }).code ?? 'error'))
      .finally(() => {
        tally.pending.delete(p);
      });
    tally.pending.add(p);
  };
}

/**
 * Sends each seq when it is due (open loop), skipping those due while `concurrency` publishes
 * are in flight. Returns when the schedule started (performance.now()).
 */
async function runSchedule(
  req: PublishRequest,
  plan: ReturnType<typeof schedule>,
  send: (seq: number) => void,
  tally: Tally,
  monitor: LoadMonitor,
): Promise<number> {
  const { endSeq, measuredFrom } = plan;
  const wait = req.startAt - (performance.timeOrigin + performance.now());
  if (wait > 0) await sleep(wait);
  const t0 = performance.now();
  let next = req.startSeq;
  while (next < endSeq) {
    const due = Math.min(
      endSeq,
      req.startSeq + Math.floor(((performance.now() - t0) * req.rate) / 1000) + 1,
    );
    for (; next < due; next++) {
      if (next === measuredFrom) monitor.reset();
      if (tally.pending.size < req.concurrency) send(next);
      else {
        tally.skipped++;
        tally.rejected.push(next);
      }
    }
    if (next < endSeq) {
      const at = t0 + ((next - req.startSeq) * 1000) / req.rate;
      await sleep(Math.max(0, at - performance.now()));
    }
  }
  return t0;
}

async function publish(req: PublishRequest): Promise<PublishResult> {
  const pools = req.urls.map(
    (base) => new Pool(base, { connections: req.concurrency, pipelining: 1 }),
  );
  const histogram = newLatencyHistogram();
  const monitor = new LoadMonitor();
  const plan = schedule(req);
  const tally = newTally();
  const send = sender(req, pools, plan.measuredFrom, histogram, tally);
  const t0 = await runSchedule(req, plan, send, tally, monitor);
  const scheduleEnd = performance.now();
  await Promise.race([Promise.all(tally.pending), sleep(10_000)]);
  const load = monitor.read();
  await Promise.all(pools.map((p) => p.destroy()));
  const measuredSeconds = Math.max(1e-3, (scheduleEnd - t0 - req.warmupMs) / 1000);
  const result: PublishResult = {
    startSeq: req.startSeq,
    endSeq: plan.endSeq,
    offeredPerS: req.rate,
    // Accepted publishes scheduled in the measured window over the window the schedule spans:
    // the schedule's own length, so a schedule that slipped counts against the achieved rate.
    achievedPerS: tally.acceptedMeasured / Math.max(measuredSeconds, req.durationMs / 1000),
    accepted: tally.accepted,
    skipped: tally.skipped,
    failed: tally.failed,
    rejected: tally.rejected.sort((a, b) => a - b),
    histogram: hdr.encodeIntoCompressedBase64(histogram),
    errors: tally.errors,
    load,
  };
  histogram.destroy();
  monitor.stop();
  return result;
}

if (process.send) {
  process.on('message', (req: PublishRequest) => {
    publish(req).then(
      (result) => process.send?.({ type: 'published', result }),
      (err: unknown) => {
        process.stderr.write(`loadtest publisher: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  });
  process.on('disconnect', () => process.exit(0));
}
