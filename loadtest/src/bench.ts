// `npm run bench:fanout`: the fan-out benchmark. For each server, started one at a time on a
// random port (only one loads the machine at a time): its capacity (highest publish rate with the
// delivery p99 under the target for N subscribers, deliveries/s), fixed fan-out points (1000 x 50/s
// and 5000 x 10/s, or --subscribers x each of --rates: publish latency, delivery latency, server
// CPU per delivery, lost), and the example stream. Servers: ours (memory broker, Redis broker, or
// both: --broker), the receiver's ceiling, the pre-framed node:http reference, the direct-send
// reference, naive express, better-sse (bench-targets.ts; --servers picks some). The receiver's
// ceiling is a server that costs next to nothing per delivery: its capacity is what the receiving
// side (--receiver client or raw) can take on this machine, and every server's capacity is shown
// as a share of it: near 100 %, the receiver, not the server, was measured. With --url, only the
// given server is measured. With --channels-per-stream N > 1 every point (capacity and fixed)
// reads N channels per stream at the rate per channel, and only our server is measured (the
// references serve no /sse/streams).
import { availableParallelism } from 'node:os';
import {
  BENCH_TOKEN,
  type Broker,
  benchTargets,
  CEILING,
  type RunningTarget,
  type TargetSpec,
  urlTarget,
} from './bench-targets.ts';
import type { LoadtestConfig } from './config.ts';
import type { Receiver } from './fanout/rig.ts';
import { green, log, red, yellow } from './output.ts';
import { environment, type Figures, labelled, type Report, writeReport } from './report/report.ts';
import { formatFigure, textTable } from './report/table.ts';
import { runCapacity } from './scenarios/capacity.ts';
import { runFanout } from './scenarios/fanout.ts';
import { runStream } from './scenarios/stream.ts';

const FIXED: [number, number][] = [
  [1000, 50],
  [5000, 10],
];
const FIXED_SECONDS = 6;

/** The capacity figures kept per server (as `<server>_<figure>`). */
const CAPACITY_FIGURES = [
  'capacity_events_per_s',
  'capacity_deliveries_per_s',
  'capacity_delivery_p99_ms',
  'capacity_publish_p99_ms',
  'capacity_server_cpu_per_delivery_ms',
  'first_unsustained_rate_per_s',
  'capacity_harness_event_loop_p99_max_ms',
  'harness_limited',
];

/** The fan-out figures kept per server and fixed point (as `<server>_<n>x<rate>_<figure>`). */
const FIXED_FIGURES = [
  'publish_achieved_per_s',
  'publish_latency_p50_ms',
  'publish_latency_p99_ms',
  'deliveries_per_s',
  'delivery_p50_ms',
  'delivery_p99_ms',
  'server_cpu_per_delivery_ms',
  'bytes_per_delivery',
  'lost',
  'duplicated',
  'out_of_order',
  'corrupted',
  'harness_event_loop_p99_max_ms',
  'harness_worker_cpu_max_pct',
  'harness_limited',
];

const CAPACITY_COLUMNS = [
  'server',
  'events/s',
  'deliveries/s',
  'of receiver ceiling',
  'p99 there',
  'first failing rate',
  'harness loop p99 there',
  'harness-limited',
];

const FIXED_COLUMNS = [
  'server',
  'fan-out',
  'achieved',
  'publish p50',
  'publish p99',
  'delivery p50',
  'delivery p99',
  'server CPU/delivery',
  'bytes/delivery',
  'lost/dup/order/corrupt',
  'harness loop p99',
  'worker CPU',
  'harness-limited',
];

const STREAM_COLUMNS = ['server', 'streams/s', 'p99', 'errors'];

export interface BenchOptions {
  urls: string[];
  config: LoadtestConfig;
  out: string;
  progress: boolean;
  broker: Broker;
  subscribers?: number;
  workers?: number;
  p99TargetMs: number;
  receiver: Receiver;
  /** Channels per subscriber's stream (default 1); rates are per channel. */
  channelsPerStream?: number;
  /** The fixed points are `subscribers` x each rate (default FIXED). */
  rates?: number[];
  /** Only these servers (bench-targets.ts names). */
  servers?: string[];
}

/** A capacity at or above this share of the receiver's ceiling was set by the receiver. */
const RECEIVER_BOUND_SHARE = 0.9;

/** The options with the capacity subscriber count and the publish token settled. */
type BenchRun = Omit<BenchOptions, 'subscribers'> & { subscribers: number; token: string };

/** What the bench gathers over every server: figures, table rows, chart series, warnings. */
interface Tally {
  figures: Figures;
  warnings: string[];
  /** Why the harness, not the server, may have set some figures. */
  limited: string[];
  /** Each server's capacity figures, in the order measured (rows built when printed). */
  capacities: { server: string; figures: Figures }[];
  fixedRows: string[][];
  streamRows: string[][];
  capacitySeries: { rate: number; p99: number | null; ok: boolean; server: string }[];
  /** Our server's delivery latency and throughput at 5000 subscribers, for the charts. */
  series: Report['series'] | null;
}

const newTally = (): Tally => ({
  figures: {},
  warnings: [],
  limited: [],
  capacities: [],
  fixedRows: [],
  streamRows: [],
  capacitySeries: [],
  series: null,
});

/** `into[<prefix>_<key>]` for each key: the run's figure, or null where it has none. */
function copyFigures(into: Figures, prefix: string, from: Figures, keys: string[]): void {
  for (const k of keys) into[`${prefix}_${k}`] = from[k] ?? null;
}

/** A run's warnings and harness-limited reasons, labelled with the server and the run. */
function noteRun(tally: Tally, label: string, run: Pick<Report, 'warnings' | 'harnessLimited'>) {
  tally.warnings.push(...labelled(label, run.warnings));
  tally.limited.push(...labelled(label, run.harnessLimited ?? []));
}

/** The ceiling's capacity in deliveries/s, when it was measured and sustained anything. */
function ceilingOf(tally: Tally): number | null {
  const c = tally.capacities.find((x) => x.server === CEILING)?.figures.capacity_deliveries_per_s;
  return c ? c : null;
}

/** A capacity as a share of the receiver's ceiling (null without a ceiling). */
const shareOf = (c: Figures, ceiling: number | null) =>
  ceiling === null || c.capacity_deliveries_per_s === null
    ? null
    : c.capacity_deliveries_per_s / ceiling;

function capacityRow(server: string, c: Figures, ceiling: number | null): string[] {
  const share = shareOf(c, ceiling);
  return [
    server,
    formatFigure('x_per_s', c.capacity_events_per_s),
    formatFigure('x_per_s', c.capacity_deliveries_per_s),
    share === null ? 'n/a' : `${(share * 100).toFixed(0)} %`,
    formatFigure('x_ms', c.capacity_delivery_p99_ms),
    formatFigure('x_per_s', c.first_unsustained_rate_per_s),
    formatFigure('x_ms', c.capacity_harness_event_loop_p99_max_ms),
    c.harness_limited ? 'yes' : 'no',
  ];
}

function fixedRow(server: string, n: number, rate: number, perStream: number, f: Figures) {
  const bytes = f.bytes_per_delivery;
  return [
    server,
    perStream > 1 ? `${n} x ${perStream} ch x ${rate}/s` : `${n} x ${rate}/s`,
    formatFigure('x_per_s', f.publish_achieved_per_s),
    formatFigure('x_ms', f.publish_latency_p50_ms),
    formatFigure('x_ms', f.publish_latency_p99_ms),
    formatFigure('x_ms', f.delivery_p50_ms),
    formatFigure('x_ms', f.delivery_p99_ms),
    formatFigure('x_ms', f.server_cpu_per_delivery_ms),
    bytes === null || bytes === undefined ? 'n/a' : `${bytes.toFixed(0)} B`,
    `${f.lost}/${f.duplicated}/${f.out_of_order}/${f.corrupted}`,
    formatFigure('x_ms', f.harness_event_loop_p99_max_ms),
    formatFigure('x_pct', f.harness_worker_cpu_max_pct),
    f.harness_limited ? 'yes' : 'no',
  ];
}

async function measureCapacity(name: string, base: string, run: BenchRun, tally: Tally) {
  log(
    `== ${name} (${base}): capacity, ${run.subscribers} subscribers, p99 <= ${run.p99TargetMs} ms`,
  );
  const cap = await runCapacity({
    ...run.config.fanout,
    bases: [base],
    subscribers: run.subscribers,
    workers: run.workers,
    receiver: run.receiver,
    channelsPerStream: run.channelsPerStream,
    p99TargetMs: run.p99TargetMs,
    startRate: 20,
    maxRate: 20_000,
    stepSeconds: 3,
    warmup: 1,
    connections: 64,
    precision: 0.15,
    token: run.token,
  });
  copyFigures(tally.figures, name, cap.figures, CAPACITY_FIGURES);
  for (const p of cap.series.capacity ?? []) tally.capacitySeries.push({ ...p, server: name });
  noteRun(tally, `${name} capacity`, cap);
  tally.capacities.push({ server: name, figures: cap.figures });
}

async function measureFixedPoint(
  name: string,
  base: string,
  [n, rate]: [number, number],
  run: BenchRun,
  tally: Tally,
) {
  const perStream = run.channelsPerStream ?? 1;
  const channels = perStream > 1 ? ` (${perStream} channels per stream, rate per channel)` : '';
  log(`== ${name}: fan-out ${n} x ${rate}/s${channels}`);
  const r = await runFanout({
    ...run.config.fanout,
    bases: [base],
    subscribers: n,
    rate,
    duration: FIXED_SECONDS,
    warmup: 1,
    // Half a second of publishes in flight (at least 16): a server that answers a publish once
    // its events reached every subscriber (ours) takes a few hundred ms to answer at 10,000
    // subscribers, and must not be offered less than the rate for it.
    connections: Math.max(16, Math.ceil(rate / 2)),
    workers: run.workers,
    receiver: run.receiver,
    channelsPerStream: perStream,
    token: run.token,
    progress: run.progress,
  });
  const key = `${name}_${n}x${rate}`;
  copyFigures(tally.figures, key, r.figures, FIXED_FIGURES);
  if (name.startsWith('ours') && n === 5000 && !tally.series) tally.series = r.series;
  noteRun(tally, key, r);
  tally.fixedRows.push(fixedRow(name, n, rate, perStream, r.figures));
}

async function measureStream(name: string, base: string, run: BenchRun, tally: Tally) {
  log(`== ${name}: stream, 100 connections`);
  const s = await runStream({ base, connections: 100, duration: 5, progress: run.progress });
  copyFigures(tally.figures, `${name}_stream`, s.figures, ['streams_per_s', 'latency_p99_ms']);
  tally.streamRows.push([
    name,
    formatFigure('x_per_s', s.figures.streams_per_s),
    formatFigure('x_ms', s.figures.latency_p99_ms),
    String(s.figures.errors),
  ]);
}

/** Starts one server, measures its capacity, the fixed points and the stream, and stops it. */
async function measureServer(spec: TargetSpec, run: BenchRun, tally: Tally): Promise<void> {
  log(`\n== ${spec.name}: starting`);
  let target: RunningTarget;
  try {
    target = await spec.start();
  } catch (err) {
    tally.warnings.push(`${spec.name}: could not start: ${(err as Error).message}`);
    log(red(`${spec.name}: could not start: ${(err as Error).message}`));
    return;
  }
  try {
    await measureCapacity(spec.name, target.base, run, tally);
    for (const point of fixedPoints(run)) {
      await measureFixedPoint(spec.name, target.base, point, run, tally);
    }
    if (spec.stream) await measureStream(spec.name, target.base, run, tally);
  } finally {
    await target.stop();
  }
}

/** The fixed fan-out points: --subscribers x each of --rates, or FIXED. */
const fixedPoints = (run: BenchRun): [number, number][] =>
  run.rates === undefined ? FIXED : run.rates.map((rate) => [run.subscribers, rate]);

/** Each server's capacity as a share of the receiver's ceiling (figures), and a verdict line. */
function ceilingShares(tally: Tally): string[] {
  const ceiling = ceilingOf(tally);
  if (ceiling === null) return [];
  const lines: string[] = [];
  for (const { server, figures } of tally.capacities) {
    if (server === CEILING) continue;
    const share = shareOf(figures, ceiling);
    tally.figures[`${server}_capacity_share_of_receiver_ceiling`] = share;
    if (share !== null && share >= RECEIVER_BOUND_SHARE) {
      lines.push(
        `${server}: capacity at ${(share * 100).toFixed(0)} % of the receiver's ceiling: the receiver, not the server, set it`,
      );
    }
  }
  return lines;
}

/** The three tables on stdout, then every warning on stderr. */
function printTables(tally: Tally, run: BenchRun, receiverBound: string[]): void {
  const print = (s: string) => process.stdout.write(`${s}\n`);
  const perStream = run.channelsPerStream ?? 1;
  const streams =
    perStream > 1
      ? `, each one stream of ${perStream} channels (events/s and rates per channel)`
      : '';
  print(
    `\nCapacity: highest publish rate with delivery p99 <= ${run.p99TargetMs} ms, ${run.subscribers} subscribers${streams}, nothing lost (receiver: ${run.receiver})`,
  );
  const ceiling = ceilingOf(tally);
  print(
    textTable(
      CAPACITY_COLUMNS,
      tally.capacities.map((c) => capacityRow(c.server, c.figures, ceiling)),
    ),
  );
  for (const line of receiverBound) print(line);
  print(
    `\nFixed fan-out points (publish latency: request -> 202; delivery: publish -> subscriber; bytes/delivery: the server's SSE bytes written over deliveries; receiver: ${run.receiver})`,
  );
  print(textTable(FIXED_COLUMNS, tally.fixedRows));
  print('\n/sse/test?count=10&interval_ms=0, 100 connections (autocannon)');
  print(textTable(STREAM_COLUMNS, tally.streamRows));
  for (const w of tally.warnings) log(red(`\n!!! ${w} !!!`));
}

function benchReport(specs: TargetSpec[], run: BenchRun, tally: Tally, startedAt: string): Report {
  return {
    scenario: 'bench-fanout',
    startedAt,
    target: specs.map((s) => s.name).join(' '),
    parameters: {
      broker: run.broker,
      capacity_subscribers: run.subscribers,
      p99_target_ms: run.p99TargetMs,
      receiver: run.receiver,
      channels_per_stream: run.channelsPerStream ?? 1,
      fixed: fixedPoints(run)
        .map(([n, r]) => `${n}x${r}`)
        .join(' '),
      cpus: availableParallelism(),
    },
    environment: environment(),
    figures: tally.figures,
    series: {
      ...(tally.series ?? {
        latency: [],
        latencyLabel: 'delivery latency',
        throughput: [],
        throughputLabel: 'deliveries per second',
      }),
      capacity: tally.capacitySeries,
    },
    warnings: tally.warnings,
    harnessLimited: tally.limited,
  };
}

/** Figures of each run that must be 0. */
const FAULTS = ['_lost', '_duplicated', '_out_of_order', '_corrupted'];

/**
 * 1: events lost, duplicated, out of order or corrupted, no server, or one that did not start;
 * 3: harness-limited.
 */
function benchExitCode(tally: Tally, servers: number): number {
  const lost = Object.entries(tally.figures)
    .filter(([k]) => FAULTS.some((f) => k.endsWith(f)))
    .reduce((n, [, v]) => n + (v ?? 0), 0);
  if (lost > 0 || servers === 0) return 1;
  if (tally.warnings.some((w) => w.includes('could not start'))) return 1;
  if (tally.limited.length > 0) return 3;
  log(green('\nbench done'));
  return 0;
}

export async function runBench(options: BenchOptions): Promise<number> {
  const multi = (options.channelsPerStream ?? 1) > 1;
  const all = benchTargets(options.broker).filter((t) => !multi || t.multiChannel);
  const chosen = options.servers ? all.filter((t) => options.servers!.includes(t.name)) : all;
  const specs = options.urls.length > 0 ? [urlTarget(options.urls[0]!)] : chosen;
  const run: BenchRun = {
    ...options,
    subscribers: options.subscribers ?? 1000,
    token: options.urls.length > 0 ? options.config.token : BENCH_TOKEN,
  };
  const startedAt = new Date().toISOString();
  const tally = newTally();
  for (const spec of specs) await measureServer(spec, run, tally);
  printTables(tally, run, ceilingShares(tally));
  const report = benchReport(specs, run, tally, startedAt);
  const files = await writeReport(report, run.out);
  log(`\nreport: ${files.markdown}\n        ${files.svg}`);
  if (tally.limited.length > 0) log(yellow('\nHARNESS-LIMITED in places: see the report'));
  return benchExitCode(tally, specs.length);
}
