// `capacity`: the highest publish rate a server sustains for N subscribers with the delivery p99
// at or under a target, nothing lost or duplicated. Steps the rate up (doubling) until a step
// fails, then bisects between the last good and the first failing rate. A step the harness
// limited (achieved < offered, or a worker's event loop lagging) counts as failed and is marked:
// past that point the figure says what the harness could offer, not what the server could take.
// With `channelsPerStream` N > 1 the rates stepped are per channel (each stream receives rate x N
// events per second), and so is capacity_events_per_s (the achieved publishes per second over N);
// capacity_deliveries_per_s counts every delivery.
import type { FanoutRig, Receiver, StepResult } from '../fanout/rig.ts';
import { log as stderrLog } from '../output.ts';
import type { Figures, Report } from '../report/report.ts';
import { type Samples, scrapeMetrics } from '../server-metrics.ts';
import { openRig, scrapeAll, stepFigures, stepOptions } from './fanout.ts';

export interface CapacityOptions {
  bases: string[];
  subscribers: number;
  /** Subscriber worker processes; default defaultWorkers(subscribers) (fanout.ts openRig). */
  workers?: number;
  /** What the workers read with (default `client`). */
  receiver?: Receiver;
  /** Channels each subscriber's stream carries (default 1); the rates are per channel. */
  channelsPerStream?: number;
  p99TargetMs: number;
  startRate: number;
  maxRate: number;
  /** Seconds measured per step, after `warmup` seconds. */
  stepSeconds: number;
  warmup: number;
  connections: number;
  channel: string;
  payloadBytes: number;
  drainMs: number;
  token: string;
  /** Bisection stops when the bracket is narrower than this share of the good rate. */
  precision?: number;
  log?: (line: string) => void;
}

interface Point {
  rate: number;
  result: StepResult;
  figures: Figures;
  ok: boolean;
  why: string;
}

/** Why a step does not count as sustained; '' when it does. */
function unsustained(result: StepResult, p99TargetMs: number): string {
  const p99 = result.deliveryLatencyMs?.p99 ?? null;
  if (result.harnessLimited.length > 0) {
    return `harness-limited: ${result.harnessLimited.join('; ')}`;
  }
  if (result.lost + result.duplicated + result.outOfOrder + result.corrupted > 0) {
    return `lost ${result.lost}, duplicated ${result.duplicated}, out of order ${result.outOfOrder}, corrupted ${result.corrupted}`;
  }
  if (p99 === null) return 'nothing delivered';
  if (p99 > p99TargetMs) return `p99 ${p99.toFixed(1)} ms > ${p99TargetMs} ms`;
  return '';
}

/**
 * One step at `rate`, judged against the target, with one log line. Steps run back to back, so
 * the previous step's scrape of each target's /metrics (`previous`) is this step's before; a
 * target it has none for (the first step, or a failed scrape) is scraped now. Returns the scrape
 * after the step too, for the next one.
 */
async function tryRate(
  rig: FanoutRig,
  options: CapacityOptions,
  rate: number,
  previous: (Samples | null)[],
  log: (line: string) => void,
): Promise<{ point: Point; after: (Samples | null)[] }> {
  const before = await Promise.all(previous.map((s, i) => s ?? scrapeMetrics(options.bases[i]!)));
  // forget: settle this step's seqs once counted; a lost event's hole then holds no later seqs.
  const result = await rig.step(stepOptions(options, rate, options.stepSeconds), true);
  const after = await scrapeAll(options.bases);
  const figures = stepFigures(result, before, after);
  const p99 = result.deliveryLatencyMs?.p99 ?? null;
  const why = unsustained(result, options.p99TargetMs);
  const point = { rate, result, figures, ok: why === '', why };
  const per = rig.perStream > 1 ? ` per channel (${rig.perStream} per stream)` : '';
  log(
    `  ${rate}/s${per} x ${rig.opened}: p99 ${p99 === null ? 'n/a' : `${p99.toFixed(1)} ms`}, achieved ${result.publish.achievedPerS.toFixed(1)}/s, ${point.ok ? 'sustained' : `NOT sustained (${why})`}`,
  );
  return { point, after };
}

/**
 * Doubles the rate from startRate until a step fails (or maxRate is passed), then bisects:
 * the highest sustained point and the lowest failing one found (either may be null).
 */
async function searchCapacity(
  options: CapacityOptions,
  step: (rate: number) => Promise<Point>,
): Promise<{ good: Point | null; bad: Point | null }> {
  let good: Point | null = null;
  let bad: Point | null = null;
  for (let rate = options.startRate; rate <= options.maxRate; rate *= 2) {
    const p = await step(rate);
    if (p.ok) good = p;
    else {
      bad = p;
      break;
    }
  }
  const precision = options.precision ?? 0.1;
  while (good && bad && bad.rate - good.rate > Math.max(1, good.rate * precision)) {
    const mid = Math.round((good.rate + bad.rate) / 2);
    const p = await step(mid);
    if (p.ok) good = p;
    else bad = p;
  }
  return { good, bad };
}

function capacityWarnings(
  rig: FanoutRig,
  points: Point[],
  bad: Point | null,
  limited: boolean,
  maxRate: number,
): string[] {
  const warnings: string[] = [];
  if (rig.failed > 0) {
    warnings.push(
      `${rig.failed} subscriber(s) failed to connect: ${JSON.stringify(rig.openErrors)}`,
    );
  }
  if (limited) {
    warnings.push(
      `HARNESS-LIMITED at ${bad!.rate}/s: ${bad!.why}; the server's capacity may be higher than reported`,
    );
  }
  if (!bad) warnings.push(`every rate up to --max-rate ${maxRate}/s was sustained`);
  for (const p of points) {
    const r = p.result;
    if (r.lost + r.duplicated + r.outOfOrder + r.corrupted > 0) {
      warnings.push(
        `at ${p.rate}/s: EVENTS LOST: ${r.lost}, DUPLICATED: ${r.duplicated}, OUT OF ORDER: ${r.outOfOrder}, CORRUPTED: ${r.corrupted} (all must be 0)`,
      );
    }
  }
  return warnings;
}

/** The figures at the highest sustained rate (`good`), and totals over every step. */
function capacityFigures(
  opened: number,
  perStream: number,
  points: Point[],
  good: Point | null,
  bad: Point | null,
  limited: boolean,
): Figures {
  const g = good?.figures;
  return {
    subscribers_open: opened,
    // Per channel, like the rates stepped (the publisher's achieved rate is all channels').
    capacity_events_per_s: good ? good.result.publish.achievedPerS / perStream : 0,
    capacity_deliveries_per_s: g?.deliveries_per_s ?? 0,
    capacity_delivery_p99_ms: g?.delivery_p99_ms ?? null,
    capacity_publish_p99_ms: g?.publish_latency_p99_ms ?? null,
    capacity_server_cpu_per_delivery_ms: g?.server_cpu_per_delivery_ms ?? null,
    capacity_bytes_per_delivery: g?.bytes_per_delivery ?? null,
    first_unsustained_rate_per_s: bad?.rate ?? null,
    capacity_harness_event_loop_p99_max_ms: g?.harness_event_loop_p99_max_ms ?? null,
    lost: points.reduce((n, p) => n + p.result.lost, 0),
    duplicated: points.reduce((n, p) => n + p.result.duplicated, 0),
    out_of_order: points.reduce((n, p) => n + p.result.outOfOrder, 0),
    corrupted: points.reduce((n, p) => n + p.result.corrupted, 0),
    steps: points.length,
    harness_limited: limited ? 1 : 0,
  };
}

function capacitySeries(points: Point[], good: Point | null): Report['series'] {
  return {
    latency: good?.result.deliveryDistribution ?? [],
    latencyLabel: `delivery latency at ${good?.rate ?? 0}/s (highest sustained)`,
    throughput: good?.result.perSecond ?? [],
    throughputLabel: `deliveries per second at ${good?.rate ?? 0}/s`,
    capacity: points.map((p) => ({
      rate: p.rate,
      p99: p.result.deliveryLatencyMs?.p99 ?? null,
      ok: p.ok,
    })),
  };
}

export async function runCapacity(
  options: CapacityOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  const log = options.log ?? stderrLog;
  const channel = `${options.channel}-cap-${Date.now().toString(36)}`;
  const rig = await openRig(options, channel);
  try {
    const points: Point[] = [];
    let previous: (Samples | null)[] = options.bases.map(() => null);
    const { good, bad } = await searchCapacity(options, async (rate) => {
      const { point, after } = await tryRate(rig, options, rate, previous, log);
      previous = after;
      points.push(point);
      return point;
    });
    const limited = bad !== null && bad.result.harnessLimited.length > 0;
    return {
      scenario: 'capacity',
      target: options.bases.join(' '),
      parameters: {
        subscribers: options.subscribers,
        p99_target_ms: options.p99TargetMs,
        // Per channel; each stream receives the rate x channels_per_stream.
        start_rate_per_s: options.startRate,
        channels_per_stream: rig.perStream,
        step_s: options.stepSeconds,
        warmup_s: options.warmup,
        publish_concurrency: options.connections,
        workers: rig.options.workers,
        receiver: rig.options.receiver,
        channel,
      },
      figures: capacityFigures(rig.opened, rig.perStream, points, good, bad, limited),
      series: capacitySeries(points, good),
      warnings: capacityWarnings(rig, points, bad, limited, options.maxRate),
      harnessLimited: limited ? [bad!.why] : [],
    };
  } finally {
    await rig.close();
  }
}
