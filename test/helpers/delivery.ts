// What "acknowledged = delivered" means for one subscriber, checked against what it received:
// every acknowledged id exactly once, in id order, unless an `event: reset` (history_exceeded)
// came before the first event after a gap. Also: a bounded pool of concurrent publishes.
import { compareIds, parseEventId } from '../../services/server/src/broker/event-id.ts';
import type { SseEvent } from './server.ts';

export const byId = (a: string, b: string) => compareIds(parseEventId(a)!, parseEventId(b)!);

export interface DeliveryReport {
  acked: number;
  /** Events received that are not resets. */
  received: number;
  resets: number;
  /** Acknowledged ids that never arrived (explained by a reset or not). */
  missing: number;
  /** Missing ids with no reset between the event before the gap and the event after it. */
  silentGaps: number;
  duplicates: number;
  outOfOrder: number;
  /** Ids received that no publish acknowledged. */
  unknown: number;
  /** Reset reasons other than history_exceeded. */
  badResets: string[];
}

/** Walks the received events against the acknowledged ids (in any order). */
export function deliveryReport(acked: readonly string[], events: readonly SseEvent[]) {
  const sorted = [...acked].sort(byId);
  const at = new Map(sorted.map((id, i) => [id, i]));
  const report: DeliveryReport = {
    acked: sorted.length,
    received: 0,
    resets: 0,
    missing: 0,
    silentGaps: 0,
    duplicates: 0,
    outOfOrder: 0,
    unknown: 0,
    badResets: [],
  };
  let next = 0; // index in `sorted` of the next id expected
  let last: string | null = null;
  let resetSince = false;
  const seen = new Set<string>();
  for (const e of events) {
    if (e.event === 'reset') {
      report.resets++;
      const reason = (JSON.parse(e.data) as { reason?: string }).reason ?? '';
      if (reason !== 'history_exceeded') report.badResets.push(reason);
      resetSince = true;
      continue;
    }
    report.received++;
    const id = e.id ?? '';
    if (seen.has(id)) {
      report.duplicates++;
      continue;
    }
    seen.add(id);
    if (last !== null && parseEventId(id) !== null && byId(id, last) <= 0) {
      report.outOfOrder++;
      continue;
    }
    const pos = at.get(id);
    if (pos === undefined) {
      report.unknown++;
      last = id;
      continue;
    }
    if (pos > next) {
      report.missing += pos - next;
      if (!resetSince) report.silentGaps += pos - next;
    }
    next = pos + 1;
    last = id;
    resetSince = false;
  }
  report.missing += sorted.length - next;
  report.silentGaps += sorted.length - next;
  return report;
}

/** True when the report shows the contract kept. */
export function deliveredAsPromised(r: DeliveryReport): boolean {
  return (
    r.silentGaps === 0 &&
    r.duplicates === 0 &&
    r.outOfOrder === 0 &&
    r.unknown === 0 &&
    r.badResets.length === 0
  );
}

export function describeDelivery(r: DeliveryReport): string {
  return (
    `got ${r.received} of ${r.acked} acknowledged events, ${r.resets === 0 ? 'no reset' : `${r.resets} reset(s)`}; ` +
    `missing ${r.missing} (${r.silentGaps} with no reset before them), duplicates ${r.duplicates}, ` +
    `out of order ${r.outOfOrder}, unknown ids ${r.unknown}` +
    (r.badResets.length > 0 ? `, resets with other reasons: ${r.badResets.join(',')}` : '')
  );
}

/** Runs `task(0..count-1)` with at most `concurrency` running at once; resolves in task order. */
export async function inFlight<T>(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = new Array(count);
  let started = 0;
  const lane = async () => {
    while (started < count) {
      const i = started++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return out;
}

/** `n` events whose data is `<tag><i>:` padded with x to `bytes` characters (for histories). */
export function paddedEvents(n: number, bytes: number, tag = ''): { data: string }[] {
  return Array.from({ length: n }, (_, i) => {
    const head = `${tag}${i}:`;
    return { data: head + 'x'.repeat(Math.max(0, bytes - head.length)) };
  });
}
