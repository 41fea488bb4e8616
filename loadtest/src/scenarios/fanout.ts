// `fanout`, the critical write path: N subscribers (the project's client library, or raw sockets
// with `--receiver raw`, spread over worker processes) hold a channel open while a separate
// publisher process publishes open-loop at a fixed rate. Every event's data carries its publish
// time and a sequence number: the workers measure delivery latency and count each subscriber's
// events by sequence number (lost, duplicated), check the order of the server's event ids and the
// data's shape (out of order, corrupted). The server's fan-out histogram, CPU, bytes written and
// memory come from each target's /metrics. With `channelsPerStream` N > 1 every subscriber reads
// ONE stream /sse/streams over the channels `<channel>.0` .. `<channel>.<N-1>`, and `rate` is per
// channel: each stream receives rate x N events per second (fanout/rig.ts).
import { SingleBar } from 'cli-progress';
import {
  defaultWorkers,
  FanoutRig,
  type Receiver,
  type RigOptions,
  type StepOptions,
  type StepResult,
} from '../fanout/rig.ts';
import { log } from '../output.ts';
import type { Figures, Report } from '../report/report.ts';
import {
  delta,
  histogramQuantile,
  type Samples,
  sample,
  scrapeMetrics,
} from '../server-metrics.ts';

export interface FanoutOptions {
  bases: string[];
  subscribers: number;
  rate: number;
  duration: number;
  warmup: number;
  connections: number;
  /** Subscriber worker processes; default defaultWorkers(subscribers). */
  workers?: number;
  /** What the workers read with (default `client`, the project's client library). */
  receiver?: Receiver;
  /** Channels each subscriber's stream carries (default 1); `rate` is per channel. */
  channelsPerStream?: number;
  channel: string;
  payloadBytes: number;
  drainMs: number;
  token: string;
  progress: boolean;
}

/** A progress bar on stderr when `enabled` (a terminal); nothing otherwise. */
export function progressBar(label: string, total: number, enabled: boolean, extra = '') {
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} {duration_formatted} ${extra}`,
    stream: process.stderr,
    noTTYOutput: false,
    hideCursor: true,
    clearOnComplete: false,
  });
  if (enabled) bar.start(total, 0, { deliveries: 0 });
  return {
    update: (n: number, payload?: Record<string, unknown>) => enabled && bar.update(n, payload),
    stop: () => enabled && bar.stop(),
  };
}

/** Sums one sample over the scrapes of every target (null when no target has it). */
export function sumDelta(before: (Samples | null)[], after: (Samples | null)[], key: string) {
  let total: number | null = null;
  before.forEach((b, i) => {
    const d = delta(b, after[i] ?? null, key);
    if (d !== null) total = (total ?? 0) + d;
  });
  return total;
}

function sumSample(s: (Samples | null)[], key: string) {
  let total: number | null = null;
  for (const x of s) {
    const v = sample(x, key);
    if (v !== null) total = (total ?? 0) + v;
  }
  return total;
}

export const scrapeAll = (bases: string[]) => Promise.all(bases.map((b) => scrapeMetrics(b)));

/** The figures of one step, common to `fanout`, `capacity` and the bench. */
export function stepFigures(
  r: StepResult,
  before: (Samples | null)[],
  after: (Samples | null)[],
): Figures {
  const cpu = sumDelta(before, after, 'process_cpu_seconds_total');
  const bytes = sumDelta(before, after, 'sse_bytes_sent_total');
  const fanoutCount = sumDelta(before, after, 'sse_fanout_duration_seconds_count');
  const fanoutSum = sumDelta(before, after, 'sse_fanout_duration_seconds_sum');
  const ms = (s: number | null) => (s === null ? null : s * 1000);
  const q = (p: number) =>
    after.length === 1
      ? ms(histogramQuantile(before[0] ?? null, after[0] ?? null, 'sse_fanout_duration_seconds', p))
      : null;
  const f: Figures = {
    publish_offered_per_s: r.publish.offeredPerS,
    publish_achieved_per_s: r.publish.achievedPerS,
    published: r.publish.accepted,
    publish_skipped: r.publish.skipped,
    publish_errors: r.publish.failed,
    publish_latency_p50_ms: r.publishLatencyMs?.p50 ?? null,
    publish_latency_p99_ms: r.publishLatencyMs?.p99 ?? null,
    deliveries: r.deliveries,
    deliveries_expected: r.expected,
    deliveries_per_s: r.deliveriesPerS,
    delivery_p50_ms: r.deliveryLatencyMs?.p50 ?? null,
    delivery_p90_ms: r.deliveryLatencyMs?.p90 ?? null,
    delivery_p99_ms: r.deliveryLatencyMs?.p99 ?? null,
    delivery_p999_ms: r.deliveryLatencyMs?.p999 ?? null,
    delivery_max_ms: r.deliveryLatencyMs?.max ?? null,
    lost: r.lost,
    duplicated: r.duplicated,
    out_of_order: r.outOfOrder,
    corrupted: r.corrupted,
    server_fanout_p50_ms: q(0.5),
    server_fanout_p99_ms: q(0.99),
    server_fanout_mean_ms:
      fanoutCount && fanoutSum !== null ? (fanoutSum / fanoutCount) * 1000 : null,
    // Server CPU (all targets) while publishing and draining, over the deliveries counted (the
    // same denominator for any server, whatever its own metrics).
    server_cpu_per_delivery_ms:
      cpu !== null && r.deliveries > 0 ? (cpu * 1000) / r.deliveries : null,
    // SSE bytes the server wrote (events, ids, heartbeats; not the HTTP chunk framing) over the
    // deliveries counted: what one delivery costs on the wire.
    bytes_per_delivery: bytes !== null && r.deliveries > 0 ? bytes / r.deliveries : null,
    server_rss_after_bytes: sumSample(after, 'process_resident_memory_bytes'),
    harness_publisher_cpu_pct: r.publish.load.cpuPct,
    harness_publisher_event_loop_p99_ms: r.publish.load.eventLoopP99Ms,
  };
  r.workers.forEach((w, i) => {
    f[`harness_worker${i}_cpu_pct`] = w.cpuPct;
    f[`harness_worker${i}_event_loop_p99_ms`] = w.eventLoopP99Ms;
  });
  f.harness_event_loop_p99_max_ms = Math.max(
    r.publish.load.eventLoopP99Ms,
    ...r.workers.map((w) => w.eventLoopP99Ms),
  );
  f.harness_worker_cpu_max_pct = Math.max(0, ...r.workers.map((w) => w.cpuPct));
  // Raw receiver: subscribers checked by comparison with the worker's shared stream.
  f.harness_subscribers_shared = r.sharedSubscribers;
  f.harness_limited = r.harnessLimited.length > 0 ? 1 : 0;
  return f;
}

export function stepWarnings(r: StepResult, rig: FanoutRig): string[] {
  const warnings: string[] = [];
  if (r.lost + r.duplicated + r.outOfOrder + r.corrupted > 0) {
    warnings.push(
      `EVENTS LOST: ${r.lost}, DUPLICATED: ${r.duplicated}, OUT OF ORDER: ${r.outOfOrder}, CORRUPTED: ${r.corrupted} (all must be 0)`,
    );
  }
  if (rig.failed > 0) {
    warnings.push(
      `${rig.failed} subscriber(s) failed to connect: ${JSON.stringify(rig.openErrors)}`,
    );
  }
  if (r.publish.failed > 0) {
    warnings.push(
      `${r.publish.failed} publish request(s) failed: ${JSON.stringify(r.publish.errors)}`,
    );
  }
  for (const l of r.harnessLimited) warnings.push(`HARNESS-LIMITED: ${l}`);
  return warnings;
}

/** What a rig step is published with, whatever its rate and length (fanout's and capacity's). */
type PublishSettings = Pick<
  FanoutOptions,
  'warmup' | 'connections' | 'payloadBytes' | 'token' | 'drainMs'
>;

/** A rig step at `rate`/s, measured for `seconds` after the warm-up. */
export function stepOptions(settings: PublishSettings, rate: number, seconds: number): StepOptions {
  return {
    rate,
    warmupMs: settings.warmup * 1000,
    durationMs: seconds * 1000,
    concurrency: settings.connections,
    payloadBytes: settings.payloadBytes,
    token: settings.token,
    drainMs: settings.drainMs,
  };
}

/** What the rig is opened with, from fanout's or capacity's options. */
type RigSettings = Pick<
  FanoutOptions,
  'bases' | 'subscribers' | 'workers' | 'receiver' | 'channelsPerStream'
>;

/** The rig's options: the subscribers on `channel`, over `workers` (default: defaultWorkers). */
function rigOptions(options: RigSettings, channel: string): RigOptions {
  return {
    bases: options.bases,
    channel,
    subscribers: options.subscribers,
    workers: options.workers ?? defaultWorkers(options.subscribers),
    receiver: options.receiver ?? 'client',
    channelsPerStream: options.channelsPerStream ?? 1,
  };
}

/** The subscribers on `channel` (or its N channels), over the worker processes, and the publisher. */
export function openRig(options: RigSettings, channel: string): Promise<FanoutRig> {
  return FanoutRig.start(rigOptions(options, channel));
}

/** The measured step, with a progress bar (seconds published, deliveries so far) when enabled. */
async function publishStep(rig: FanoutRig, options: FanoutOptions): Promise<StepResult> {
  const n = options.channelsPerStream ?? 1;
  const rate =
    n > 1
      ? `${options.rate}/s on each of ${n} channels (${options.rate * n}/s)`
      : `${options.rate}/s`;
  log(
    `publishing ${rate} for ${options.warmup} s warm-up + ${options.duration} s (open loop, at most ${options.connections} in flight)`,
  );
  const total = Math.ceil(options.warmup + options.duration);
  const bar = progressBar('publishing (s)', total, options.progress, '{deliveries} deliveries');
  const r = await rig.step(
    stepOptions(options, options.rate, options.duration),
    false,
    options.progress
      ? (s, n) => bar.update(Math.min(total, Math.floor(s)), { deliveries: n })
      : undefined,
  );
  bar.stop();
  return r;
}

function fanoutParameters(options: FanoutOptions, rig: RigOptions): Report['parameters'] {
  const perStream = rig.channelsPerStream ?? 1;
  return {
    subscribers: options.subscribers,
    // Per channel; each stream receives rate x channels_per_stream events per second.
    rate_per_s: options.rate,
    channels_per_stream: perStream,
    events_per_stream_per_s: options.rate * perStream,
    duration_s: options.duration,
    warmup_s: options.warmup,
    publish_concurrency: options.connections,
    workers: rig.workers,
    receiver: rig.receiver,
    payload_pad_bytes: options.payloadBytes,
    channel: rig.channel,
  };
}

export async function runFanout(
  options: FanoutOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  // A fresh channel per run: no history from earlier runs.
  const channel = `${options.channel}-${Date.now().toString(36)}`;
  const before = await scrapeAll(options.bases);
  const settings = rigOptions(options, channel);
  const streams =
    (settings.channelsPerStream ?? 1) > 1
      ? `, each one stream of ${settings.channelsPerStream} channels`
      : '';
  log(
    `opening ${options.subscribers} subscribers${streams} over ${settings.workers} worker process(es), receiver ${settings.receiver}`,
  );
  const openStarted = performance.now();
  const rig = await FanoutRig.start(settings);
  try {
    const openSeconds = (performance.now() - openStarted) / 1000;
    const idle = await scrapeAll(options.bases);
    const r = await publishStep(rig, options);
    const after = await scrapeAll(options.bases);
    const rssIdle = sumDelta(before, idle, 'process_resident_memory_bytes');
    return {
      scenario: 'fanout',
      target: options.bases.join(' '),
      parameters: fanoutParameters(options, settings),
      figures: {
        subscribers_open: rig.opened,
        subscribers_failed: rig.failed,
        subscribers_open_s: openSeconds,
        ...stepFigures(r, idle, after),
        server_rss_per_idle_connection_bytes:
          rssIdle === null || rig.opened === 0 ? null : rssIdle / rig.opened,
      },
      series: {
        latency: r.deliveryDistribution,
        latencyLabel: 'delivery latency (publish -> subscriber)',
        throughput: r.perSecond,
        throughputLabel: 'deliveries per second',
      },
      warnings: stepWarnings(r, rig),
      harnessLimited: r.harnessLimited,
    };
  } finally {
    await rig.close();
  }
}
