// npm run loadtest -- --scenario <stream|fanout|connections|capacity|storm> [options]
// Exit codes (the first that applies): 2 bad flags or config; 1 unreachable target, a failed run,
// events lost/duplicated/out of order/corrupted, or storm subscribers not served; 99 a --threshold
// failed; 3 the run was harness-limited (achieved publish rate < 98 % of offered, or a harness
// process's event-loop delay p99 > 100 ms, or a storm worker's CPU saturated); 0 done.
import { writeFileSync } from 'node:fs';
import {
  httpUrlFlag,
  integerFlag,
  parseFlags,
  positiveIntegerFlag,
  UsageError,
} from '../../services/shared/cli.ts';
import { ConfigError } from '../../services/shared/config-file.ts';
import { runBench } from './bench.ts';
import { BROKERS, type Broker, benchTargets, brokersOf } from './bench-targets.ts';
import { type LoadtestConfig, loadLoadtestConfig } from './config.ts';
import { MAX_CHANNELS_PER_STREAM, RECEIVERS, type Receiver } from './fanout/rig.ts';
import { green, log, red, yellow } from './output.ts';
import { renderComparison } from './report/chart.ts';
import { compareReports, readReport } from './report/compare.ts';
import { environment, labelled, type Report, writeReport } from './report/report.ts';
import { figuresTable } from './report/table.ts';
import { aggregate } from './rounds.ts';
import { runCapacity } from './scenarios/capacity.ts';
import { runConnections } from './scenarios/connections.ts';
import { runFanout } from './scenarios/fanout.ts';
import { runStorm, type StormOptions } from './scenarios/storm.ts';
import { runStormBench } from './scenarios/storm-bench.ts';
import { runStream } from './scenarios/stream.ts';
import {
  evaluate,
  formatVerdicts,
  parseThreshold,
  THRESHOLD_FAILED_EXIT,
  type Threshold,
} from './thresholds.ts';

export const HARNESS_LIMITED_EXIT = 3;
/** --p99-target-ms when not given: the delivery p99 (ms) a sustained rate must keep. */
const DEFAULT_P99_TARGET_MS = 250;
const SCENARIOS = ['stream', 'fanout', 'connections', 'capacity', 'storm'] as const;
type Scenario = (typeof SCENARIOS)[number];

export const USAGE = `usage: npm run loadtest -- --scenario <stream|fanout|connections|capacity|storm> [options]
       npm run bench:fanout -- [--broker memory|redis|both|sentinel|cluster|ha] [--subscribers N]
                               [--receiver raw] [--channels-per-stream N]
       npm run loadtest -- --scenario storm --bench [--broker memory|redis|both] [--subscribers N]

  --scenario NAME       stream | fanout | connections | capacity | storm
  --url BASE            server base URL; repeat for replicas (subscribers round-robin, publishes
                        round-robin, /metrics read from each). Default: config/loadtest.yaml or
                        LOADTEST_URL (http://127.0.0.1:24856); storm: http:// only
  --subscribers N       fanout, capacity, connections, storm: open streams
  --rate R              fanout: events published per second per channel (open loop); capacity:
                        first step
  --duration S          seconds measured (stream, fanout; capacity: per step)
  --warmup S            fanout, capacity: seconds published before measuring (default 1)
  --connections N       stream: concurrent connections; fanout, capacity: publishes in flight at most
  --workers N           fanout, capacity, storm: subscriber processes (default: 1 per 1000, at most
                        1 per CPU, at least 1 per 15000)
  --receiver KIND       fanout, capacity, fan-out bench: client (default: the project's client
                        library) | raw (raw sockets: HTTP/1.1 chunked + SSE framing only; http://)
  --channels-per-stream N
                        fanout, capacity, fan-out bench: 1 to ${MAX_CHANNELS_PER_STREAM} (default 1: /sse/channels/<channel>).
                        N > 1: channels <channel>.0 .. <channel>.<N-1>, every subscriber reads ONE
                        stream /sse/streams over all N; --rate (and capacity's rates) are per
                        channel, so each stream receives rate x N events/s (publish_offered_per_s
                        is rate x N); the bench then measures only our server
  --history K           storm: events each subscriber must replay (K+1 are published; default 1000)
  --event-bytes B       storm: about B bytes of data per event (default 1024)
  --timeout S           storm: subscribers not served S seconds after the storm began are not
                        served (default 60)
  --p99-target-ms MS    capacity: the delivery p99 a sustained rate must keep (default ${DEFAULT_P99_TARGET_MS})
  --max-rate R          capacity: highest rate tried (default 100000)
  --threshold EXPR      fail (exit 99) unless a figure passes, e.g. 'delivery_p99_ms<250'; repeatable
  --rounds N            run N times; figures are medians with min-max (default 1)
  --compare FILE        this run's figures beside an earlier report's: change, and whether it is
                        outside both runs' spread; also writes a comparison chart
  --broker KIND         bench: memory | redis | both (redis starts redis-server on a random port);
                        fan-out bench also: sentinel (a Sentinel set: master, replica, three
                        sentinels; ours with waitReplicas 0 and 1) | cluster (three masters) |
                        ha (redis, sentinel and cluster)
  --rates R,R,...       fan-out bench: the fixed points are --subscribers x each rate (default
                        1000 x 50/s and 5000 x 10/s)
  --servers A,B,...     fan-out bench: only these servers (ours-memory, ours-redis,
                        ours-sentinel, ours-sentinel-wait1, ours-cluster, receiver-ceiling,
                        preframed, direct-send, express-naive, better-sse)
  --out DIR             where reports go (default loadtest/results)
  --json                print the report as JSON on stdout (everything else on stderr)
  --bench               fanout: the fan-out benchmark (npm run bench:fanout); takes only --url
                        (once), --broker, --subscribers, --workers, --p99-target-ms, --receiver,
                        --rates, --servers, --out, --no-progress
                        storm: the restart storm (the harness starts the server, opens N live
                        subscribers, restarts it; they reconnect by themselves); takes only
                        --broker, --subscribers, --history, --event-bytes, --timeout, --workers,
                        --out, --no-progress
  --no-progress         no progress bars (they only show on a terminal anyway)
  --help                this text

exit codes: 0 done, 1 failed (unreachable, lost, duplicated, out-of-order or corrupted events,
            storm subscribers not served), 2 bad flags, 3 harness-limited, 99 a threshold failed`;

function positive(name: string, raw: string | undefined): number | undefined {
  return positiveIntegerFlag(`--${name}`, raw);
}

function nonNegative(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(raw))
    throw new UsageError(`--${name} must be a number >= 0, got "${raw}"`);
  return Number(raw);
}

/** A base URL without trailing slashes (paths are appended to it). */
const withoutTrailingSlash = (url: string): string => url.replace(/\/+$/, '');

/** --scenario: required (unless --help) and one of SCENARIOS. */
function scenarioFlag(raw: string | undefined, help: boolean): Scenario {
  if (!help && raw === undefined) throw new UsageError('--scenario is required');
  if (raw !== undefined && !(SCENARIOS as readonly string[]).includes(raw)) {
    throw new UsageError(`unknown scenario "${raw}" (${SCENARIOS.join(', ')})`);
  }
  return raw as Scenario;
}

/**
 * --broker: memory, redis or both (any bench), sentinel, cluster or ha (the fan-out bench's), and
 * only with --bench; memory when not given.
 */
function brokerFlag(raw: string | undefined, bench: boolean, scenario: Scenario): Broker {
  const allowed: readonly string[] = scenario === 'storm' ? ['memory', 'redis', 'both'] : BROKERS;
  if (raw !== undefined && !allowed.includes(raw)) {
    if ((BROKERS as readonly string[]).includes(raw)) {
      throw new UsageError(`--broker ${raw} goes with --scenario fanout --bench`);
    }
    const names = `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}`;
    throw new UsageError(`--broker must be ${names}, got "${raw}"`);
  }
  if (raw !== undefined && !bench) throw new UsageError('--broker goes with --bench');
  return (raw ?? 'memory') as Broker;
}

/** Every server the fan-out bench knows, whatever the broker (--servers names them). */
const SERVER_NAMES = [...new Set(BROKERS.flatMap((b) => benchTargets(b).map((t) => t.name)))];
/** Those that serve several-channel streams (--channels-per-stream > 1). */
const MULTI_CHANNEL_SERVERS = [
  ...new Set(
    BROKERS.flatMap((b) =>
      benchTargets(b)
        .filter((t) => t.multiChannel)
        .map((t) => t.name),
    ),
  ),
];

/** Flags the bench does not take: it sets its own rates, durations and reports. */
const NOT_WITH_BENCH = [
  'connections',
  'duration',
  'warmup',
  'rate',
  'max-rate',
  'threshold',
  'rounds',
  'compare',
  'json',
] as const;

/** The storm bench starts, measures and restarts its own server. */
const NOT_WITH_STORM_BENCH = ['url', 'p99-target-ms', 'receiver', 'rates', 'servers'] as const;

/**
 * With --bench: none of NOT_WITH_BENCH; the fan-out bench takes at most one --url (the server to
 * measure, then no --servers), the storm bench none of NOT_WITH_STORM_BENCH.
 */
function benchFlags(values: Record<string, unknown>, urls: string[], scenario: Scenario): void {
  const given = NOT_WITH_BENCH.find((name) => values[name] !== undefined);
  if (given !== undefined) {
    throw new UsageError(
      `--${given} does not go with --bench (it sets its own rates and durations)`,
    );
  }
  if (scenario === 'storm') {
    const storm = NOT_WITH_STORM_BENCH.find((name) => values[name] !== undefined);
    if (storm !== undefined) {
      throw new UsageError(
        `--${storm} does not go with --scenario storm --bench (it starts and restarts its own server)`,
      );
    }
    return;
  }
  if (urls.length > 1) throw new UsageError('--bench measures one server: give --url once');
  if (urls.length === 1 && values.servers !== undefined) {
    throw new UsageError('--servers does not go with --url (the bench measures that server)');
  }
}

/** --rates and --servers: the fan-out bench's only. */
function fanoutBenchFlags(values: Record<string, unknown>, scenario: Scenario, bench: boolean) {
  for (const name of ['rates', 'servers'] as const) {
    if (values[name] !== undefined && !(bench && scenario === 'fanout')) {
      throw new UsageError(`--${name} goes with --scenario fanout --bench`);
    }
  }
}

/** --rates R,R,...: 1 to 20 rates, each an integer from 1 to 100000. */
function ratesFlag(raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  const rates = raw.split(',').map((r) => integerFlag('--rates', r.trim(), 1, 100_000)!);
  if (rates.length > 20) throw new UsageError('--rates takes at most 20 rates');
  return rates;
}

/** --servers A,B,...: names the bench knows, each once, available with --broker. */
function serversFlag(raw: string | undefined, broker: Broker): string[] | undefined {
  if (raw === undefined) return undefined;
  const names = raw.split(',').map((n) => n.trim());
  const available = benchTargets(broker).map((t) => t.name);
  for (const name of names) {
    if (!SERVER_NAMES.includes(name)) {
      throw new UsageError(`--servers: unknown server "${name}" (${SERVER_NAMES.join(', ')})`);
    }
    if (!available.includes(name)) {
      const with_ = brokersOf(name);
      throw new UsageError(
        `--servers: ${name} needs --broker ${with_.slice(0, -1).join(', ')} or ${with_.at(-1)}`,
      );
    }
  }
  if (new Set(names).size !== names.length) throw new UsageError('--servers: a server twice');
  return names;
}

/** --receiver: client or raw, with fanout or capacity only; raw reads http:// only. */
function receiverFlag(raw: string | undefined, scenario: Scenario, urls: string[]): Receiver {
  if (raw === undefined) return 'client';
  if (!(RECEIVERS as readonly string[]).includes(raw)) {
    throw new UsageError(`--receiver must be ${RECEIVERS.join(' or ')}, got "${raw}"`);
  }
  if (scenario !== 'fanout' && scenario !== 'capacity') {
    throw new UsageError('--receiver goes with --scenario fanout or capacity');
  }
  const https = urls.find((url) => !url.startsWith('http://'));
  if (raw === 'raw' && https !== undefined) {
    throw new UsageError(
      `--url ${https}: the raw receiver reads raw HTTP/1.1 sockets, http:// only`,
    );
  }
  return raw as Receiver;
}

/** --channels-per-stream: 1 to MAX_CHANNELS_PER_STREAM, with fanout or capacity only. */
function channelsPerStreamFlag(raw: string | undefined, scenario: Scenario): number {
  const n = integerFlag('--channels-per-stream', raw, 1, MAX_CHANNELS_PER_STREAM);
  if (n === undefined) return 1;
  if (scenario !== 'fanout' && scenario !== 'capacity') {
    throw new UsageError('--channels-per-stream goes with --scenario fanout or capacity');
  }
  return n;
}

/** Several channels per stream: only servers that serve /sse/streams (ours). */
function multiChannelServers(servers: string[] | undefined, channelsPerStream: number): void {
  if (servers === undefined || channelsPerStream === 1) return;
  const other = servers.find((name) => !MULTI_CHANNEL_SERVERS.includes(name));
  if (other !== undefined) {
    throw new UsageError(
      `--servers: ${other} serves no /sse/streams: --channels-per-stream ${channelsPerStream} measures ours only`,
    );
  }
}

/** Flags storm does not take: it publishes its history in batches, then only connects. */
const NOT_WITH_STORM = [
  'connections',
  'duration',
  'warmup',
  'rate',
  'max-rate',
  'p99-target-ms',
] as const;
const STORM_ONLY = ['history', 'event-bytes', 'timeout'] as const;

/** Storm's flags only with storm, none of NOT_WITH_STORM with it, and http:// targets. */
function stormFlags(values: Record<string, unknown>, scenario: Scenario, urls: string[]): void {
  if (scenario !== 'storm') {
    const given = STORM_ONLY.find((name) => values[name] !== undefined);
    if (given !== undefined) throw new UsageError(`--${given} goes with --scenario storm`);
    return;
  }
  const given = NOT_WITH_STORM.find((name) => values[name] !== undefined);
  if (given !== undefined) {
    throw new UsageError(
      `--${given} does not go with --scenario storm (it publishes its history, then only connects)`,
    );
  }
  const https = urls.find((url) => !url.startsWith('http://'));
  if (https !== undefined) {
    throw new UsageError(`--url ${https}: storm reads raw HTTP/1.1 sockets, http:// only`);
  }
}

function thresholdFlags(raws: string[] | undefined): Threshold[] {
  try {
    return (raws ?? []).map(parseThreshold);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The flags, checked in this order (the first problem is the one reported). */
function parse(argv: string[]) {
  const { values } = parseFlags(argv, {
    scenario: { type: 'string' },
    url: { type: 'string', multiple: true },
    connections: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rate: { type: 'string' },
    subscribers: { type: 'string' },
    workers: { type: 'string' },
    'p99-target-ms': { type: 'string' },
    'max-rate': { type: 'string' },
    history: { type: 'string' },
    'event-bytes': { type: 'string' },
    receiver: { type: 'string' },
    'channels-per-stream': { type: 'string' },
    rates: { type: 'string' },
    servers: { type: 'string' },
    timeout: { type: 'string' },
    threshold: { type: 'string', multiple: true },
    rounds: { type: 'string' },
    broker: { type: 'string' },
    out: { type: 'string' },
    compare: { type: 'string' },
    json: { type: 'boolean' },
    bench: { type: 'boolean' },
    'no-progress': { type: 'boolean' },
    help: { type: 'boolean' },
  });
  const scenario = scenarioFlag(values.scenario, Boolean(values.help));
  if (values.bench && scenario !== 'fanout' && scenario !== 'storm')
    throw new UsageError('--bench goes with --scenario fanout or storm');
  const urls = (values.url ?? []).map((url) => withoutTrailingSlash(httpUrlFlag('--url', url)!));
  if (values.bench) benchFlags(values, urls, scenario);
  stormFlags(values, scenario, urls);
  fanoutBenchFlags(values, scenario, Boolean(values.bench));
  const receiver = receiverFlag(values.receiver, scenario, urls);
  const channelsPerStream = channelsPerStreamFlag(values['channels-per-stream'], scenario);
  const broker = brokerFlag(values.broker, Boolean(values.bench), scenario);
  const thresholds = thresholdFlags(values.threshold);
  const args = {
    help: Boolean(values.help),
    scenario,
    urls,
    connections: positive('connections', values.connections),
    duration: positive('duration', values.duration),
    warmup: nonNegative('warmup', values.warmup),
    rate: positive('rate', values.rate),
    subscribers: positive('subscribers', values.subscribers),
    workers: positive('workers', values.workers),
    p99TargetMs: positive('p99-target-ms', values['p99-target-ms']) ?? DEFAULT_P99_TARGET_MS,
    maxRate: positive('max-rate', values['max-rate']),
    history: integerFlag('--history', values.history, 1, 100_000),
    eventBytes: integerFlag('--event-bytes', values['event-bytes'], 0, 60_000),
    timeout: integerFlag('--timeout', values.timeout, 1, 3600),
    rounds: positive('rounds', values.rounds) ?? 1,
    thresholds,
    broker,
    receiver,
    channelsPerStream,
    rates: ratesFlag(values.rates),
    servers: serversFlag(values.servers, broker),
    out: values.out,
    compare: values.compare,
    json: Boolean(values.json),
    bench: Boolean(values.bench),
    progress: !values['no-progress'],
  };
  multiChannelServers(args.servers, channelsPerStream);
  return args;
}

/** One clear line when the target cannot be reached at all. */
async function reachable(base: string): Promise<string | null> {
  try {
    await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) }).then((r) =>
      r.body?.cancel(),
    );
    return null;
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? (err as Error).message;
  }
}

type Args = ReturnType<typeof parse>;
type Partial = Omit<Report, 'environment' | 'startedAt'>;

/** What fanout and capacity share: the config's fan-out settings, targets, pool and warm-up. */
function fanoutSettings(args: Args, config: LoadtestConfig, bases: string[]) {
  const subscribers = args.subscribers ?? config.fanout.subscribers;
  return {
    ...config.fanout,
    bases,
    subscribers,
    workers: args.workers,
    receiver: args.receiver,
    channelsPerStream: args.channelsPerStream,
    warmup: args.warmup ?? config.fanout.warmup,
    token: config.token,
  };
}

/** storm's options: the flags, else config/loadtest.yaml's storm section. */
function stormOptions(args: Args, config: LoadtestConfig, bases: string[]): StormOptions {
  return {
    bases,
    channel: config.storm.channel,
    subscribers: args.subscribers ?? config.storm.subscribers,
    history: args.history ?? config.storm.history,
    eventBytes: args.eventBytes ?? config.storm.eventBytes,
    workers: args.workers,
    timeoutS: args.timeout ?? config.storm.timeout,
    token: config.token,
  };
}

function runOnce(args: Args, config: LoadtestConfig, bases: string[], progress: boolean) {
  if (args.scenario === 'stream') {
    return runStream({
      base: bases[0]!,
      connections: args.connections ?? config.stream.connections,
      duration: args.duration ?? config.stream.duration,
      progress,
    });
  }
  if (args.scenario === 'fanout') {
    return runFanout({
      ...fanoutSettings(args, config, bases),
      rate: args.rate ?? config.fanout.rate,
      duration: args.duration ?? config.fanout.duration,
      connections: args.connections ?? config.fanout.connections,
      progress,
    });
  }
  if (args.scenario === 'storm') return runStorm(stormOptions(args, config, bases));
  if (args.scenario === 'capacity') {
    return runCapacity({
      ...fanoutSettings(args, config, bases),
      p99TargetMs: args.p99TargetMs,
      startRate: args.rate ?? 50,
      maxRate: args.maxRate ?? 100_000,
      stepSeconds: args.duration ?? 4,
      connections: args.connections ?? Math.max(32, config.fanout.connections),
    });
  }
  return runConnections({
    ...config.connections,
    base: bases[0]!,
    subscribers: args.subscribers ?? config.connections.subscribers,
    progress,
  });
}

/** Runs the scenario --rounds times; several rounds make one report of medians. */
async function runRounds(
  args: Args,
  config: LoadtestConfig,
  bases: string[],
  progress: boolean,
): Promise<Report> {
  const startedAt = new Date().toISOString();
  const rounds: Partial[] = [];
  for (let i = 0; i < args.rounds; i++) {
    if (args.rounds > 1) log(`round ${i + 1} of ${args.rounds}`);
    rounds.push(await runOnce(args, config, bases, progress));
  }
  const report: Report = { ...rounds.at(-1)!, startedAt, environment: environment() };
  if (args.rounds > 1) {
    const { figures, spread } = aggregate(rounds.map((r) => r.figures));
    report.figures = figures;
    report.spread = spread;
    report.rounds = args.rounds;
    report.warnings = rounds.flatMap((r, i) => labelled(`round ${i + 1}`, r.warnings));
    report.harnessLimited = rounds.flatMap((r, i) =>
      labelled(`round ${i + 1}`, r.harnessLimited ?? []),
    );
  }
  return report;
}

/** --compare's chart beside the report's: the p99s and rates both reports have. */
async function writeComparisonChart(old: Report, report: Report, svgPath: string): Promise<void> {
  const names = Object.keys(report.figures).filter(
    (k) => k in old.figures && /(_p99_ms|_per_s)$/.test(k),
  );
  const svg = svgPath.replace(/\.svg$/, '-compare.svg');
  writeFileSync(svg, await renderComparison(old, report, names));
  log(`comparison chart: ${svg}`);
}

/** The figures (stdout, or stderr with --json), warnings, comparison and report paths. */
async function printReport(
  report: Report,
  files: { json: string; markdown: string; svg: string },
  args: Args,
  old: Report | undefined,
): Promise<void> {
  const out = args.json ? log : (s: string) => process.stdout.write(`${s}\n`);
  const receiver = report.parameters.receiver;
  const by = receiver === undefined ? '' : ` (receiver: ${String(receiver)})`;
  out(
    `\n${report.scenario} against ${report.target}${by}\n${figuresTable(report.figures, report.spread)}`,
  );
  for (const w of report.warnings) log(red(`\n!!! ${w} !!!`));
  if (old) {
    out(`\n${compareReports(old, report)}`);
    await writeComparisonChart(old, report, files.svg);
  }
  log(`\nreport: ${files.markdown}\n        ${files.json}\n        ${files.svg}`);
  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Figures that fail the run (exit 1) when above 0; a scenario reports those that apply. */
const FAILING_FIGURES = [
  'lost',
  'duplicated',
  'out_of_order',
  'corrupted',
  'subscribers_not_served',
] as const;

/** Prints the harness-limited note and the threshold verdicts (last); returns the exit code. */
function verdict(report: Report, thresholds: Threshold[]): number {
  const limited = (report.harnessLimited ?? []).length > 0;
  if (limited) log(yellow('\nHARNESS-LIMITED: the load generator may have set these figures'));
  const verdicts = evaluate(thresholds, report.figures);
  if (verdicts.length > 0) {
    const text = formatVerdicts(verdicts);
    log(`\nthresholds:\n${verdicts.every((v) => v.ok) ? green(text) : red(text)}`);
  }
  if (FAILING_FIGURES.some((name) => (report.figures[name] ?? 0) > 0)) return 1;
  if (verdicts.some((v) => !v.ok)) return THRESHOLD_FAILED_EXIT;
  if (limited) return HARNESS_LIMITED_EXIT;
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const args = parseOrNull(argv);
  if (args === null) return 2;
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const config = loadConfigOrNull(args);
  if (config === null) return 2;
  const old = args.compare !== undefined ? readReportOrNull(args.compare) : undefined;
  if (old === null) return 2;
  const progress = args.progress && process.stderr.isTTY === true;
  if (args.bench && args.scenario === 'storm') {
    return runStormBench({
      config,
      out: config.out,
      broker: args.broker,
      subscribers: args.subscribers,
      history: args.history,
      eventBytes: args.eventBytes,
      timeoutS: args.timeout,
      workers: args.workers,
    });
  }
  if (args.bench) {
    return runBench({
      urls: args.urls,
      config,
      out: config.out,
      progress,
      broker: args.broker,
      subscribers: args.subscribers,
      workers: args.workers,
      p99TargetMs: args.p99TargetMs,
      receiver: args.receiver,
      channelsPerStream: args.channelsPerStream,
      rates: args.rates,
      servers: args.servers,
    });
  }
  const bases = args.urls.length > 0 ? args.urls : [withoutTrailingSlash(config.url)];
  for (const base of bases) {
    const unreachable = await reachable(base);
    if (unreachable !== null) {
      process.stderr.write(`loadtest: cannot reach ${base}: ${unreachable}\n`);
      return 1;
    }
  }
  const report = await runRounds(args, config, bases, progress);
  const files = await writeReport(report, config.out);
  await printReport(report, files, args, old);
  return verdict(report, args.thresholds);
}

/** The flags, or null after printing the problem and the usage. */
function parseOrNull(argv: string[]): Args | null {
  try {
    return parse(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`loadtest: ${err.message}\n\n${USAGE}\n`);
    return null;
  }
}

function loadConfigOrNull(args: Args): LoadtestConfig | null {
  try {
    return loadLoadtestConfig(process.env, { url: args.urls[0], out: args.out });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`loadtest: config error: ${err.message}\n`);
    return null;
  }
}

function readReportOrNull(path: string): Report | null {
  try {
    return readReport(path);
  } catch (err) {
    process.stderr.write(`loadtest: --compare: ${(err as Error).message}\n`);
    return null;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`loadtest: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
