// A worker's subscribers, once each has an outcome, summed up into its StormStats.
import * as hdr from 'hdr-histogram-js';
import { newLatencyHistogram } from '../fanout/histogram.ts';
import type { ProcessLoad } from '../fanout/protocol.ts';
import type { StormStats } from './protocol.ts';
import type { RawSubscriber } from './raw-subscriber.ts';

const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

/** Microseconds from `from` to `to` (epoch ms), at least 1 (an HDR histogram's lowest value). */
const micros = (from: number, to: number) => Math.max(1, Math.round((to - from) * 1000));

function emptyStats(subscribers: number, load: ProcessLoad): StormStats {
  return {
    subscribers,
    served: 0,
    timedOut: 0,
    refused: {},
    reset: {},
    failed: {},
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    corrupted: 0,
    replayed: 0,
    compared: 0,
    firstEvent: '',
    fullReplay: '',
    lastServedAt: null,
    servedPerSecond: [],
    connectLoopMs: 0,
    load,
  };
}

/** Counts one subscriber's outcome and its events' faults into `stats`. */
function countOutcome(stats: StormStats, sub: RawSubscriber): void {
  const outcome = sub.outcome ?? { kind: 'timed_out', reason: 'timeout' };
  if (outcome.kind === 'served') stats.served++;
  else if (outcome.kind === 'timed_out') stats.timedOut++;
  else bump(stats[outcome.kind], outcome.reason);
  const check = sub.check;
  // A refused or reset stream was told why it gets no (full) replay: nothing counts as lost.
  if (outcome.kind !== 'refused' && outcome.kind !== 'reset') {
    stats.lost += check.lost(sub.endedByServer);
  }
  stats.duplicated += check.duplicated;
  stats.outOfOrder += check.outOfOrder;
  stats.corrupted += check.corrupted;
  stats.replayed += check.distinct;
  if (sub.comparedBytes > 0) stats.compared++;
}

export function tally(
  subs: readonly RawSubscriber[],
  startAt: number,
  load: ProcessLoad,
): StormStats {
  const stats = emptyStats(subs.length, load);
  const first = newLatencyHistogram();
  const full = newLatencyHistogram();
  const perSecond = new Map<number, number>();
  for (const sub of subs) {
    countOutcome(stats, sub);
    if (sub.firstEventAt !== null) first.recordValue(micros(sub.connectAt, sub.firstEventAt));
    if (sub.servedAt === null) continue;
    full.recordValue(micros(sub.connectAt, sub.servedAt));
    stats.lastServedAt = Math.max(stats.lastServedAt ?? 0, sub.servedAt);
    const second = Math.floor((sub.servedAt - startAt) / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  stats.firstEvent = hdr.encodeIntoCompressedBase64(first);
  stats.fullReplay = hdr.encodeIntoCompressedBase64(full);
  stats.servedPerSecond = [...perSecond].sort((a, b) => a[0] - b[0]);
  first.destroy();
  full.destroy();
  return stats;
}
