// The publisher (a child process of the fan-out coordinator), open loop like wrk2: event `seq` is
// due at startAt + (seq - startSeq) / rate and is sent then, whether or not earlier publishes
// were answered. At most `concurrency` publishes are in flight; a publish due while that many are
// pending is skipped (and counted), so a slow server or a slow harness shows up as an achieved
// rate below the offered one instead of a silently stretched schedule.
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';
import { eventData } from './event-data.ts';
import { LoadMonitor } from './load-monitor.ts';
import type { PublishRequest, PublishResult } from './protocol.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function publish(req: PublishRequest): Promise<PublishResult> {
  const pools = req.urls.map(
    (base) => new Pool(base, { connections: req.concurrency, pipelining: 1 }),
  );
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const monitor = new LoadMonitor();
  const pad = 'x'.repeat(req.payloadBytes);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (req.token) headers.authorization = `Bearer ${req.token}`;
  const path = `/channels/${encodeURIComponent(req.channel)}/events`;
  const total = Math.round((req.rate * (req.warmupMs + req.durationMs)) / 1000);
  const measuredFrom = req.startSeq + Math.round((req.rate * req.warmupMs) / 1000);
  const endSeq = req.startSeq + total;
  const rejected: number[] = [];
  const errors: Record<string, number> = {};
  let inFlight = 0;
  let sent = 0;
  let accepted = 0;
  let acceptedMeasured = 0;
  let skipped = 0;
  let failed = 0;
  const pending = new Set<Promise<void>>();

  const send = (seq: number) => {
    const started = performance.now();
    const ts = performance.timeOrigin + started;
    const pool = pools[seq % pools.length]!;
    inFlight++;
    sent++;
    const p = pool
      .request({
        path,
        method: 'POST',
        headers,
        body: JSON.stringify({ data: eventData(ts, seq, pad) }),
      })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode === 202) {
          accepted++;
          if (seq >= measuredFrom) {
            acceptedMeasured++;
            histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)));
          }
        } else {
          failed++;
          rejected.push(seq);
          errors[`http_${res.statusCode}`] = (errors[`http_${res.statusCode}`] ?? 0) + 1;
        }
      })
      .catch((err: unknown) => {
        failed++;
        rejected.push(seq);
        const code = (err as { code?: string }).code ?? 'error';
        errors[code] = (errors[code] ?? 0) + 1;
      })
      .finally(() => {
        inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  };

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
      if (inFlight < req.concurrency) send(next);
      else {
        skipped++;
        rejected.push(next);
      }
    }
    if (next < endSeq) {
      const at = t0 + ((next - req.startSeq) * 1000) / req.rate;
      await sleep(Math.max(0, at - performance.now()));
    }
  }
  const scheduleEnd = performance.now();
  await Promise.race([Promise.all(pending), sleep(10_000)]);
  const load = monitor.read();
  await Promise.all(pools.map((p) => p.destroy()));
  const measuredSeconds = Math.max(1e-3, (scheduleEnd - t0 - req.warmupMs) / 1000);
  const result: PublishResult = {
    startSeq: req.startSeq,
    endSeq,
    offeredPerS: req.rate,
    // Accepted publishes scheduled in the measured window over the window the schedule spans:
    // the schedule's own length, so a schedule that slipped counts against the achieved rate.
    achievedPerS: acceptedMeasured / Math.max(measuredSeconds, req.durationMs / 1000),
    scheduled: total,
    sent,
    accepted,
    skipped,
    failed,
    rejected: rejected.sort((a, b) => a - b),
    histogram: hdr.encodeIntoCompressedBase64(histogram),
    errors,
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
