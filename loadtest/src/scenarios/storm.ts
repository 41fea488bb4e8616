// `storm`, a reconnect/replay storm: K+1 events are published to a fresh channel, then N
// subscribers (raw sockets in worker processes, storm/) all connect at one instant with the first
// event's id as Last-Event-ID, as browsers do after a deploy or a network blip, and each must get
// the K events after it: once, in order, byte for byte. Reports how many were served, refused,
// reset or failed, how long the first and the full replay took, when the last one was served, and
// the server's peak memory and event-loop delay while it happened (its /metrics every SAMPLE_MS),
// and on loopback how often the kernel's accept queue overflowed (storm/listen-queue.ts).

import type { ProcessLoad } from '../fanout/protocol.ts';
import { defaultWorkers, EVENT_LOOP_P99_BOUND_MS } from '../fanout/rig.ts';
import { log } from '../output.ts';
import type { Figures, Report } from '../report/report.ts';
import { type Samples, sample } from '../server-metrics.ts';
import { addUp, StormCrew, type StormTotals, workerUrls } from '../storm/crew.ts';
import { publishHistory } from '../storm/history.ts';
import { listenQueueFigures, listenQueueWarnings, readListenQueue } from '../storm/listen-queue.ts';
import { MetricsSampler, type SampledMetrics } from '../storm/metrics-sampler.ts';
import { scrapeAll, sumDelta } from './fanout.ts';

export interface StormOptions {
  bases: string[];
  subscribers: number;
  /** K: the events each subscriber must get (K+1 are published). */
  history: number;
  /** About this many bytes of data per event. */
  eventBytes: number;
  /** Subscriber worker processes; default defaultWorkers(subscribers). */
  workers?: number;
  /** Subscribers not served this many seconds after the storm's start are not served. */
  timeoutS: number;
  channel: string;
  token: string;
}

/** A harness worker this busy (% of one core over the storm) may have set the pace. */
export const SATURATED_CPU_PCT = 90;
/** How far ahead of now the storm starts: time for every worker to get the word. */
const START_DELAY_MS = 250;

const now = () => performance.timeOrigin + performance.now();

/** Why the harness, not the server, may have set the figures (empty: it did not). */
export function stormHarnessLimits(loads: ProcessLoad[]): string[] {
  const limited: string[] = [];
  loads.forEach((l, i) => {
    if (l.eventLoopP99Ms > EVENT_LOOP_P99_BOUND_MS) {
      limited.push(
        `storm worker ${i}: event-loop delay p99 ${l.eventLoopP99Ms.toFixed(1)} ms > ${EVENT_LOOP_P99_BOUND_MS} ms`,
      );
    }
    if (l.cpuPct > SATURATED_CPU_PCT) {
      limited.push(
        `storm worker ${i}: CPU ${l.cpuPct.toFixed(0)} % of a core > ${SATURATED_CPU_PCT} % (saturated)`,
      );
    }
  });
  return limited;
}

/** `<prefix>_<reason>` figures, one per reason (lower case, as --threshold names figures). */
function reasonFigures(prefix: string, counts: Record<string, number>): Figures {
  const f: Figures = {};
  for (const [reason, n] of Object.entries(counts)) {
    f[`${prefix}_${reason.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`] = n;
  }
  return f;
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((n, v) => n + v, 0);

/** Who was served, and how fast. */
function subscriberFigures(t: StormTotals, startAt: number): Figures {
  const lastServedMs = t.lastServedAt === null ? null : t.lastServedAt - startAt;
  return {
    subscribers: t.subscribers,
    subscribers_served: t.served,
    subscribers_refused: total(t.refused),
    subscribers_reset: total(t.reset),
    subscribers_failed: total(t.failed),
    subscribers_timed_out: t.timedOut,
    subscribers_not_served: t.subscribers - t.served,
    first_event_p50_ms: t.firstEventMs?.p50 ?? null,
    first_event_p99_ms: t.firstEventMs?.p99 ?? null,
    first_event_max_ms: t.firstEventMs?.max ?? null,
    full_replay_p50_ms: t.fullReplayMs?.p50 ?? null,
    full_replay_p99_ms: t.fullReplayMs?.p99 ?? null,
    full_replay_max_ms: t.fullReplayMs?.max ?? null,
    // The storm is over when the last subscriber was served; with any left, it never was.
    storm_duration_ms: t.served === t.subscribers ? lastServedMs : null,
    last_served_ms: lastServedMs,
  };
}

/** The server's side: replays counted, memory before and at its peak, event-loop delay. */
function serverFigures(before: (Samples | null)[], after: (Samples | null)[], s: SampledMetrics) {
  let rssBefore: number | null = 0;
  for (const b of before) {
    const rss = sample(b, 'process_resident_memory_bytes');
    rssBefore = rss === null || rssBefore === null ? null : rssBefore + rss;
  }
  return {
    server_replayed_events: sumDelta(before, after, 'sse_replayed_events_total'),
    server_broker_replay_errors: sumDelta(before, after, 'sse_broker_errors_total{op="replay"}'),
    server_rss_before_bytes: rssBefore,
    server_rss_peak_bytes: s.peakRssBytes,
    server_rss_peak_growth_bytes:
      s.peakRssBytes === null || rssBefore === null ? null : s.peakRssBytes - rssBefore,
    server_event_loop_lag_p99_max_ms: s.eventLoopLagP99MaxMs,
    server_event_loop_lag_max_ms: s.eventLoopLagMaxMs,
    server_metrics_samples: s.samples,
  };
}

function harnessFigures(t: StormTotals, limited: string[]): Figures {
  const loads = t.loads;
  const f: Figures = {
    harness_connect_loop_max_ms: t.connectLoopMaxMs,
    // Verified by comparing their bytes with a reference replay (storm/reference-replay.ts).
    harness_subscribers_compared: t.compared,
  };
  loads.forEach((l, i) => {
    f[`harness_worker${i}_cpu_pct`] = l.cpuPct;
    f[`harness_worker${i}_event_loop_p99_ms`] = l.eventLoopP99Ms;
  });
  f.harness_worker_cpu_max_pct = Math.max(0, ...loads.map((l) => l.cpuPct));
  f.harness_event_loop_p99_max_ms = Math.max(0, ...loads.map((l) => l.eventLoopP99Ms));
  f.harness_limited = limited.length > 0 ? 1 : 0;
  return f;
}

function stormWarnings(t: StormTotals, limited: string[]): string[] {
  const warnings: string[] = [];
  const notServed = t.subscribers - t.served;
  if (notServed > 0) {
    warnings.push(
      `${notServed} of ${t.subscribers} subscriber(s) NOT SERVED: refused ${JSON.stringify(t.refused)}, reset ${JSON.stringify(t.reset)}, failed ${JSON.stringify(t.failed)}, timed out ${t.timedOut}`,
    );
  }
  if (t.lost + t.duplicated + t.outOfOrder + t.corrupted > 0) {
    warnings.push(
      `EVENTS LOST: ${t.lost}, DUPLICATED: ${t.duplicated}, OUT OF ORDER: ${t.outOfOrder}, CORRUPTED: ${t.corrupted} (all must be 0)`,
    );
  }
  for (const l of limited) warnings.push(`HARNESS-LIMITED: ${l}`);
  return warnings;
}

/** The storm itself: every worker connects its subscribers at one instant; the servers sampled. */
async function storm(crew: StormCrew, options: StormOptions) {
  const before = await scrapeAll(options.bases);
  const queueBefore = readListenQueue(options.bases);
  const sampler = new MetricsSampler(options.bases);
  const startAt = now() + START_DELAY_MS;
  const stats = await crew.go(startAt, startAt + options.timeoutS * 1000);
  const listenQueue = listenQueueFigures(queueBefore, readListenQueue(options.bases));
  const after = await scrapeAll(options.bases);
  sampler.add(after);
  const sampled = await sampler.stop();
  return { totals: addUp(stats), startAt, before, after, sampled, listenQueue };
}

function stormParameters(options: StormOptions, workers: number, channel: string) {
  return {
    subscribers: options.subscribers,
    history: options.history,
    event_bytes: options.eventBytes,
    workers,
    timeout_s: options.timeoutS,
    receiver: 'raw',
    channel,
  };
}

/** The history (K+1 events) on a fresh channel: its ids and how long publishing took. */
async function publish(options: StormOptions, channel: string) {
  const https = options.bases.find((base) => !base.startsWith('http://'));
  if (https !== undefined)
    throw new Error(`storm reads raw HTTP/1.1 sockets: ${https} is not http://`);
  log(
    `publishing ${options.history + 1} events of about ${options.eventBytes} bytes to ${channel}`,
  );
  const started = performance.now();
  const ids = await publishHistory({
    base: options.bases[0]!,
    channel,
    count: options.history + 1,
    eventBytes: options.eventBytes,
    token: options.token,
  });
  return { ids, seconds: (performance.now() - started) / 1000 };
}

type Run = Awaited<ReturnType<typeof storm>>;

function stormReport(
  options: StormOptions,
  run: Run,
  publishSeconds: number,
  workers: number,
  channel: string,
): Omit<Report, 'environment' | 'startedAt'> {
  const { totals } = run;
  const limited = stormHarnessLimits(totals.loads);
  return {
    scenario: 'storm',
    target: options.bases.join(' '),
    parameters: stormParameters(options, workers, channel),
    figures: {
      ...subscriberFigures(totals, run.startAt),
      replayed_events: totals.replayed,
      replayed_events_expected: options.subscribers * options.history,
      lost: totals.lost,
      duplicated: totals.duplicated,
      out_of_order: totals.outOfOrder,
      corrupted: totals.corrupted,
      ...serverFigures(run.before, run.after, run.sampled),
      ...run.listenQueue,
      history_publish_s: publishSeconds,
      ...reasonFigures('subscribers_refused', totals.refused),
      ...reasonFigures('subscribers_reset', totals.reset),
      ...reasonFigures('subscribers_failed', totals.failed),
      ...harnessFigures(totals, limited),
    },
    series: {
      latency: totals.fullReplayDistribution,
      latencyLabel: 'time to full replay (connect -> last replayed event)',
      throughput: totals.servedPerSecond.map(([second, value]) => ({ second, value })),
      throughputLabel: 'subscribers served per second of the storm',
    },
    warnings: [...stormWarnings(totals, limited), ...listenQueueWarnings(run.listenQueue)],
    harnessLimited: limited,
  };
}

export async function runStorm(
  options: StormOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  // A fresh channel per run: its history is exactly the events published here.
  const channel = `${options.channel}-${Date.now().toString(36)}`;
  const { ids, seconds } = await publish(options, channel);
  const workers = options.workers ?? defaultWorkers(options.subscribers);
  const crew = new StormCrew(workerUrls(options.bases, channel, options.subscribers, workers));
  try {
    await crew.prepare(ids, options.eventBytes);
    log(
      `storm: ${options.subscribers} subscribers over ${crew.size} worker process(es) connect at once, resuming after ${ids[0]} (${options.history} events each, timeout ${options.timeoutS} s)`,
    );
    return stormReport(options, await storm(crew, options), seconds, crew.size, channel);
  } finally {
    await crew.close();
  }
}
