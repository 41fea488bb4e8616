// A publisher for failover tests: `lanes` loops publish one event each every `intervalMs`, each
// event with its own Idempotency-Key, spread over the given servers; a 503 (or a network error)
// is retried with the same key until a 202, as a client should. What it keeps: every event's
// acknowledged id (the first 202), when each request was sent and answered (so the time to the
// first acknowledgement after a kill, and the publish latency, can be read off), and what was
// refused on the way. Bounded: it stops when told, and a retry waits 100 ms.
import { publish } from './server.ts';

export interface Ack {
  readonly key: string;
  readonly id: string;
  /** performance.now() when the request that got the 202 was sent, and when it was answered. */
  readonly sentAt: number;
  readonly answeredAt: number;
  /** Which server (index in `bases`) answered it. */
  readonly via: number;
}

export interface KeyedPublisher {
  readonly acks: Ack[];
  /** Answers other than 202, by status (0: network error), and 503s by their outcome. */
  readonly refusals: Map<string, number>;
  /** Resolves once `n` events were acknowledged (rejects after `timeoutMs`). */
  waitForAcks(n: number, timeoutMs?: number): Promise<void>;
  /** Milliseconds from `since` (performance.now()) to the first 202 to a request sent after it. */
  resumedAfter(since: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function keyedPublisher(
  bases: readonly string[],
  channel: string,
  options: { intervalMs?: number; lanes?: number; tag?: string } = {},
): KeyedPublisher {
  const intervalMs = options.intervalMs ?? 20;
  const lanes = options.lanes ?? 1;
  const tag = options.tag ?? 'e';
  const acks: Ack[] = [];
  const refusals = new Map<string, number>();
  let running = true;
  const lane = async (l: number) => {
    for (let n = 0; running; n++) {
      const key = `${tag}${l}-${n}`;
      for (let attempt = 0; running; attempt++) {
        const via = (n + l + attempt) % bases.length;
        const sentAt = performance.now();
        let status = 0;
        let id: string | undefined;
        let outcome = '';
        try {
          const r = await publish(bases[via]!, channel, { data: key }, { 'Idempotency-Key': key });
          status = r.status;
          id = r.body.ids?.[0];
          outcome = typeof r.body.outcome === 'string' ? ` ${r.body.outcome}` : '';
        } catch {
          status = 0;
        }
        if (status === 202 && id !== undefined) {
          acks.push({ key, id, sentAt, answeredAt: performance.now(), via });
          break;
        }
        const what = `${status}${outcome}`;
        refusals.set(what, (refusals.get(what) ?? 0) + 1);
        await sleep(100);
      }
      await sleep(intervalMs);
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)));
  const until = async (what: string, timeoutMs: number, check: () => boolean) => {
    const deadline = performance.now() + timeoutMs;
    while (!check()) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  };
  return {
    acks,
    refusals,
    waitForAcks: (n, timeoutMs = 30_000) =>
      until(`${n} acknowledged events`, timeoutMs, () => acks.length >= n),
    async resumedAfter(since, timeoutMs = 60_000) {
      let first: Ack | undefined;
      await until('a publish acknowledged after the failover', timeoutMs, () => {
        first = acks.find((a) => a.sentAt >= since);
        return first !== undefined;
      });
      return first!.answeredAt - since;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/** p-th percentile (0..100) of the values, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}
