// The fan-out rig: subscribers spread over `workers` child processes (round-robin over the
// target URLs), one publisher process, and the figures of each publishing step merged here
// (HDR histograms added up, deliveries per second summed per epoch second). The workers read with
// the project's client library (worker.ts) or with raw sockets (raw-worker.ts): `receiver`.
// With `channelsPerStream` N > 1 the channels are `<channel>.0` .. `<channel>.<N-1>`, every
// subscriber opens ONE stream /sse/streams over all N, and a step's `rate` is per channel: the
// publisher publishes rate x N per second, round-robin over the channels, so each stream receives
// rate x N events per second; every stream expects every seq, as with one channel.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { distribution, mergeEncoded, type Percentiles, percentiles } from './histogram.ts';
import { IpcChild } from './ipc.ts';
import type {
  ProcessLoad,
  PublishRequest,
  PublishResult,
  StreamChannelsSpec,
  WorkerReply,
  WorkerRequest,
  WorkerStats,
} from './protocol.ts';
import { streamChannelNames } from './stream-envelope.ts';

/** Which receiver the subscriber workers read with. */
export const RECEIVERS = ['client', 'raw'] as const;
export type Receiver = (typeof RECEIVERS)[number];

const WORKERS: Record<Receiver, string> = {
  client: fileURLToPath(new URL('./worker.ts', import.meta.url)),
  raw: fileURLToPath(new URL('./raw-worker.ts', import.meta.url)),
};
const PUBLISHER = fileURLToPath(new URL('./publisher.ts', import.meta.url));

/** A worker's event loop lagging past this (p99, ms) marks the run harness-limited. */
export const EVENT_LOOP_P99_BOUND_MS = 100;
/** Achieved publish rate below this share of the offered rate marks the run harness-limited. */
export const ACHIEVED_SHARE_BOUND = 0.98;

/**
 * Subscribers one worker process may hold: each is a socket, and a process may open at most 20,000
 * files here (`ulimit -Hn`), with room left for the rest.
 */
export const MAX_SUBSCRIBERS_PER_WORKER = 15_000;

/**
 * Default worker count: one per 1000 subscribers, at most one per CPU, but at least enough that
 * none holds more than MAX_SUBSCRIBERS_PER_WORKER.
 */
export function defaultWorkers(subscribers: number): number {
  const perCpu = Math.min(availableParallelism(), Math.ceil(subscribers / 1000));
  return Math.max(1, perCpu, Math.ceil(subscribers / MAX_SUBSCRIBERS_PER_WORKER));
}

/** Throws when `workers` processes would hold more than MAX_SUBSCRIBERS_PER_WORKER each. */
export function checkWorkerShare(subscribers: number, workers: number): void {
  const share = Math.ceil(subscribers / Math.max(1, Math.min(workers, subscribers)));
  if (share > MAX_SUBSCRIBERS_PER_WORKER) {
    throw new Error(
      `${subscribers} subscribers over ${workers} worker(s) is ${share} sockets per process, over ${MAX_SUBSCRIBERS_PER_WORKER}: give more --workers`,
    );
  }
}

/** Most channels one stream may carry (the server's limits.maxChannelsPerStream). */
export const MAX_CHANNELS_PER_STREAM = 32;

export interface RigOptions {
  bases: string[];
  channel: string;
  subscribers: number;
  workers: number;
  receiver: Receiver;
  /** Channels each subscriber's stream carries (default 1: /sse/channels/<channel>). */
  channelsPerStream?: number;
}

/** The several-channel streams' channels, or null for one channel on its own route. */
export function streamChannels(channel: string, perStream: number): StreamChannelsSpec | null {
  return perStream > 1 ? { prefix: `${channel}.`, count: perStream } : null;
}

/** The channels a rig publishes to: `channel`, or `<channel>.0` .. `<channel>.<N-1>`. */
export function rigChannels(channel: string, perStream: number): string[] {
  const spec = streamChannels(channel, perStream);
  return spec === null ? [channel] : streamChannelNames(spec.prefix, spec.count);
}

/** The path every subscriber opens: one channel's route, or /sse/streams over all of them. */
export function subscribePath(channel: string, perStream: number): string {
  const channels = rigChannels(channel, perStream);
  if (channels.length === 1) return `/sse/channels/${encodeURIComponent(channel)}`;
  return `/sse/streams?${channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}`;
}

export interface StepOptions {
  /** Events per second per channel (the publisher sends this x the channels per stream). */
  rate: number;
  warmupMs: number;
  durationMs: number;
  concurrency: number;
  payloadBytes: number;
  token: string;
  drainMs: number;
}

export interface StepResult {
  publish: PublishResult;
  publishLatencyMs: Percentiles | null;
  deliveryLatencyMs: Percentiles | null;
  /** [percentile, ms] for the chart. */
  deliveryDistribution: { percentile: number; ms: number }[];
  deliveries: number;
  expected: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  corrupted: number;
  /** Measured deliveries over the window from the first to the last measured arrival. */
  deliveriesPerS: number | null;
  /** Measured deliveries per whole second (partial first and last seconds left out). */
  perSecond: { second: number; value: number }[];
  workers: ProcessLoad[];
  /** Subscribers read through a worker's shared stream (raw receiver). */
  sharedSubscribers: number;
  harnessLimited: string[];
  errors: Record<string, number>;
}

/** Worker stats added up: measured deliveries per epoch second, first and last arrival, errors. */
function addUpArrivals(stats: WorkerStats[], publishErrors: Record<string, number>) {
  const bySecond = new Map<number, number>();
  const errors: Record<string, number> = { ...publishErrors };
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  let measured = 0;
  for (const s of stats) {
    for (const [sec, n] of s.perSecond) bySecond.set(sec, (bySecond.get(sec) ?? 0) + n);
    if (s.firstArrivalMs !== null) first = Math.min(first, s.firstArrivalMs);
    if (s.lastArrivalMs !== null) last = Math.max(last, s.lastArrivalMs);
    measured += s.measured;
    for (const [k, v] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + v;
  }
  return { bySecond, errors, first, last, measured };
}

/** Deliveries per whole second from 0; the first and last seconds are partial: left out. */
function wholeSeconds(bySecond: Map<number, number>): { second: number; value: number }[] {
  const seconds = [...bySecond.keys()].sort((a, b) => a - b);
  const whole = seconds.slice(1, -1);
  const t0 = whole[0] ?? 0;
  return whole.map((sec) => ({ second: sec - t0, value: bySecond.get(sec) ?? 0 }));
}

/** Why the harness, not the server, may have set a step's figures (empty: it did not). */
function harnessLimits(pub: PublishResult, workers: ProcessLoad[], concurrency: number): string[] {
  const limited: string[] = [];
  if (pub.achievedPerS < ACHIEVED_SHARE_BOUND * pub.offeredPerS) {
    limited.push(
      `achieved publish rate ${pub.achievedPerS.toFixed(1)}/s is below ${ACHIEVED_SHARE_BOUND * 100}% of the offered ${pub.offeredPerS}/s (${pub.skipped} skipped at the concurrency bound ${concurrency}, ${pub.failed} failed)`,
    );
  }
  workers.forEach((w, i) => {
    if (w.eventLoopP99Ms > EVENT_LOOP_P99_BOUND_MS) {
      limited.push(
        `subscriber worker ${i}: event-loop delay p99 ${w.eventLoopP99Ms.toFixed(1)} ms > ${EVENT_LOOP_P99_BOUND_MS} ms`,
      );
    }
  });
  if (pub.load.eventLoopP99Ms > EVENT_LOOP_P99_BOUND_MS) {
    limited.push(
      `publisher: event-loop delay p99 ${pub.load.eventLoopP99Ms.toFixed(1)} ms > ${EVENT_LOOP_P99_BOUND_MS} ms`,
    );
  }
  return limited;
}

/** One step's figures from the publisher's result and every worker's stats. */
function summarize(pub: PublishResult, stats: WorkerStats[], concurrency: number): StepResult {
  const delivery = mergeEncoded(stats.map((s) => s.histogram));
  const publishH = mergeEncoded([pub.histogram]);
  const arrivals = addUpArrivals(stats, pub.errors);
  const windowS = (arrivals.last - arrivals.first) / 1000;
  const workers = stats.map((s) => s.load);
  const result: StepResult = {
    publish: pub,
    publishLatencyMs: percentiles(publishH),
    deliveryLatencyMs: percentiles(delivery),
    deliveryDistribution: distribution(delivery),
    deliveries: stats.reduce((n, s) => n + s.deliveries, 0),
    expected: stats.reduce((n, s) => n + s.expected, 0),
    lost: stats.reduce((n, s) => n + s.lost, 0),
    duplicated: stats.reduce((n, s) => n + s.duplicated, 0),
    outOfOrder: stats.reduce((n, s) => n + s.outOfOrder, 0),
    corrupted: stats.reduce((n, s) => n + s.corrupted, 0),
    deliveriesPerS: windowS > 0 ? arrivals.measured / windowS : null,
    perSecond: wholeSeconds(arrivals.bySecond),
    workers,
    sharedSubscribers: stats.reduce((n, s) => n + s.shared, 0),
    harnessLimited: harnessLimits(pub, workers, concurrency),
    errors: arrivals.errors,
  };
  delivery.destroy();
  publishH.destroy();
  return result;
}

export class FanoutRig {
  private readonly workers: IpcChild<WorkerRequest, WorkerReply>[] = [];
  private publisher: IpcChild<PublishRequest, { type: 'published'; result: PublishResult }> | null =
    null;
  private nextSeq = 0;
  opened = 0;
  failed = 0;
  openErrors: Record<string, number> = {};

  readonly options: RigOptions;

  private constructor(options: RigOptions) {
    this.options = options;
  }

  /** Channels per subscriber's stream (1: its own route). */
  get perStream(): number {
    return this.options.channelsPerStream ?? 1;
  }

  static async start(options: RigOptions): Promise<FanoutRig> {
    const rig = new FanoutRig(options);
    try {
      await rig.open();
    } catch (err) {
      await rig.close();
      throw err;
    }
    return rig;
  }

  private async open(): Promise<void> {
    const { bases, channel, subscribers } = this.options;
    const perStream = this.perStream;
    checkWorkerShare(subscribers, this.options.workers);
    const n = Math.min(this.options.workers, subscribers);
    const urls: string[][] = Array.from({ length: n }, () => []);
    const path = subscribePath(channel, perStream);
    for (let i = 0; i < subscribers; i++) urls[i % n]!.push(`${bases[i % bases.length]}${path}`);
    const streams = streamChannels(channel, perStream);
    for (let i = 0; i < n; i++)
      this.workers.push(new IpcChild(WORKERS[this.options.receiver], `subscriber worker ${i}`));
    this.publisher = new IpcChild(PUBLISHER, 'publisher');
    const replies = await Promise.all(
      this.workers.map((w, i) => w.request({ type: 'open', urls: urls[i]!, streams })),
    );
    for (const r of replies) {
      if (r.type !== 'opened') continue;
      this.opened += r.opened;
      this.failed += r.failed;
      for (const [k, v] of Object.entries(r.errors))
        this.openErrors[k] = (this.openErrors[k] ?? 0) + v;
    }
  }

  private async received(from: number, to: number): Promise<number> {
    const replies = await Promise.all(
      this.workers.map((w) => w.request({ type: 'count', from, to })),
    );
    return replies.reduce((n, r) => n + (r.type === 'count' ? r.received : 0), 0);
  }

  /**
   * One publishing step at `rate` per channel; `forget` settles its seqs afterwards (capacity).
   * `onTick` (every 500 ms while publishing): seconds elapsed, deliveries so far.
   */
  async step(
    options: StepOptions,
    forget = false,
    onTick?: (seconds: number, deliveries: number) => void,
  ): Promise<StepResult> {
    const startAt = performance.timeOrigin + performance.now() + 200;
    const measureFrom = startAt + options.warmupMs;
    await Promise.all(
      this.workers.map((w) =>
        w.request({ type: 'measure', fromTs: measureFrom, payloadBytes: options.payloadBytes }),
      ),
    );
    const ticker = onTick ? this.tick(startAt, this.nextSeq, onTick) : null;
    const reply = await this.publisher!.request({
      type: 'publish',
      urls: this.options.bases,
      channels: rigChannels(this.options.channel, this.perStream),
      token: options.token,
      rate: options.rate * this.perStream,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      startSeq: this.nextSeq,
      concurrency: options.concurrency,
      payloadBytes: options.payloadBytes,
      startAt,
    });
    if (ticker) clearInterval(ticker);
    const pub = reply.result;
    this.nextSeq = pub.endSeq;
    await this.drain(pub, options.drainMs);
    return summarize(pub, await this.collect(pub, forget), options.concurrency);
  }

  /** Every 500 ms: `onTick` with the seconds since `startAt` and the deliveries from `from`. */
  private tick(
    startAt: number,
    from: number,
    onTick: (seconds: number, deliveries: number) => void,
  ): ReturnType<typeof setInterval> {
    return setInterval(() => {
      const seconds = (performance.timeOrigin + performance.now() - startAt) / 1000;
      this.received(from, Number.MAX_SAFE_INTEGER).then(
        (n) => onTick(Math.max(0, seconds), n),
        () => {},
      );
    }, 500);
  }

  /** Waits until every subscriber has every accepted event, or nothing arrives for a while. */
  private async drain(pub: PublishResult, drainMs: number): Promise<void> {
    const want = (pub.endSeq - pub.startSeq - pub.rejected.length) * this.opened;
    // (subscribers that never opened are reported as failed, and expect nothing)
    const until = Date.now() + drainMs;
    let seen = -1;
    let quietSince = Date.now();
    while (Date.now() < until) {
      const got = await this.received(pub.startSeq, pub.endSeq);
      if (got >= want) break;
      if (got !== seen) {
        seen = got;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > 1000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Every worker's stats for the step's seqs (`forget`: settled afterwards). */
  private async collect(pub: PublishResult, forget: boolean): Promise<WorkerStats[]> {
    const replies = await Promise.all(
      this.workers.map((w) =>
        w.request({
          type: 'collect',
          from: pub.startSeq,
          to: pub.endSeq,
          rejected: pub.rejected,
          forget,
        }),
      ),
    );
    return replies
      .filter((r): r is Extract<WorkerReply, { type: 'stats' }> => r.type === 'stats')
      .map((r) => r.stats);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ type: 'close' }).catch(() => undefined)));
    await Promise.all([...this.workers.map((w) => w.kill()), this.publisher?.kill()]);
  }
}
