// The storm's worker processes: each gets its share of the subscribers (round-robin over the
// target URLs, then over the workers, as the fan-out rig spreads them), prepares, and on `go`
// connects them all at one instant; their StormStats are added up here.
import { fileURLToPath } from 'node:url';
import { distribution, mergeEncoded, type Percentiles, percentiles } from '../fanout/histogram.ts';
import { IpcChild } from '../fanout/ipc.ts';
import type { StormReply, StormRequest, StormStats } from './protocol.ts';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** Each worker's subscriber URLs: subscriber i goes to bases[i % bases] and worker i % workers. */
export function workerUrls(
  bases: string[],
  channel: string,
  subscribers: number,
  workers: number,
): string[][] {
  const n = Math.max(1, Math.min(workers, subscribers));
  const urls: string[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < subscribers; i++) {
    urls[i % n]!.push(`${bases[i % bases.length]}/sse/channels/${encodeURIComponent(channel)}`);
  }
  return urls;
}

/** The stats of every worker added up, histograms read as percentiles. */
export interface StormTotals
  extends Omit<StormStats, 'firstEvent' | 'fullReplay' | 'load' | 'connectLoopMs'> {
  firstEventMs: Percentiles | null;
  fullReplayMs: Percentiles | null;
  fullReplayDistribution: { percentile: number; ms: number }[];
  loads: StormStats['load'][];
  /** The longest of the workers' connect loops (ms). */
  connectLoopMaxMs: number;
}

const addCounts = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

export function addUp(all: StormStats[]): StormTotals {
  const first = mergeEncoded(all.map((s) => s.firstEvent));
  const full = mergeEncoded(all.map((s) => s.fullReplay));
  const perSecond = new Map<number, number>();
  const sum = (key: 'subscribers' | 'served' | 'timedOut' | 'lost' | 'duplicated') =>
    all.reduce((n, s) => n + s[key], 0);
  const totals: StormTotals = {
    subscribers: sum('subscribers'),
    served: sum('served'),
    timedOut: sum('timedOut'),
    refused: {},
    reset: {},
    failed: {},
    lost: sum('lost'),
    duplicated: sum('duplicated'),
    outOfOrder: all.reduce((n, s) => n + s.outOfOrder, 0),
    corrupted: all.reduce((n, s) => n + s.corrupted, 0),
    replayed: all.reduce((n, s) => n + s.replayed, 0),
    compared: all.reduce((n, s) => n + s.compared, 0),
    lastServedAt: null,
    servedPerSecond: [],
    firstEventMs: percentiles(first),
    fullReplayMs: percentiles(full),
    fullReplayDistribution: distribution(full),
    loads: all.map((s) => s.load),
    connectLoopMaxMs: Math.max(0, ...all.map((s) => s.connectLoopMs)),
  };
  for (const s of all) {
    addCounts(totals.refused, s.refused);
    addCounts(totals.reset, s.reset);
    addCounts(totals.failed, s.failed);
    if (s.lastServedAt !== null)
      totals.lastServedAt = Math.max(totals.lastServedAt ?? 0, s.lastServedAt);
    for (const [sec, n] of s.servedPerSecond) perSecond.set(sec, (perSecond.get(sec) ?? 0) + n);
  }
  totals.servedPerSecond = [...perSecond].sort((a, b) => a[0] - b[0]);
  first.destroy();
  full.destroy();
  return totals;
}

export class StormCrew {
  private readonly workers: IpcChild<StormRequest, StormReply>[];
  private readonly urls: string[][];

  /** Forks one worker per share of `urls`. */
  constructor(urls: string[][]) {
    this.urls = urls;
    this.workers = urls.map((_, i) => new IpcChild(WORKER, `storm worker ${i}`));
  }

  get size(): number {
    return this.workers.length;
  }

  /** Every worker builds its requests and the expected replay of `ids`. */
  async prepare(ids: string[], eventBytes: number): Promise<void> {
    await Promise.all(
      this.workers.map((w, i) =>
        w.request({ type: 'prepare', urls: this.urls[i]!, ids, eventBytes }),
      ),
    );
  }

  /** The storm: every subscriber connects at `startAt`; waits for each worker's stats. */
  async go(startAt: number, deadline: number): Promise<StormStats[]> {
    const replies = await Promise.all(
      this.workers.map((w) => w.request({ type: 'go', startAt, deadline })),
    );
    return replies
      .filter((r): r is Extract<StormReply, { type: 'stats' }> => r.type === 'stats')
      .map((r) => r.stats);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ type: 'close' }).catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.kill()));
  }
}
