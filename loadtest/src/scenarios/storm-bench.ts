// `npm run loadtest -- --scenario storm --bench`: the restart storm (storm-restart.ts) against our
// server, started here on a fixed random port with the memory broker, the Redis broker (its own
// redis-server, which outlives the restart) or both, one after the other. The server is given a
// history big enough for K events of --event-bytes, so that nothing is trimmed; everything else is
// its defaults (retry 2 s, shutdown retry jitter 5 s, shutdown timeout 5 s). With the memory
// broker every subscriber is expected to be reset (the record dies with the process); with Redis
// none is.
import { freePort } from '../../../services/shared/free-port.ts';
import { type SpawnedServer, spawnServer } from '../../../services/shared/spawn-server.ts';
import { BENCH_TOKEN, type Broker } from '../bench-targets.ts';
import type { LoadtestConfig } from '../config.ts';
import { green, log, red, yellow } from '../output.ts';
import { type RedisProcess, startRedis } from '../redis-server.ts';
import { environment, type Figures, labelled, type Report, writeReport } from '../report/report.ts';
import { formatFigure, textTable } from '../report/table.ts';
import { type RestartableServer, runStormRestart } from './storm-restart.ts';

export interface StormBenchOptions {
  config: LoadtestConfig;
  out: string;
  broker: Broker;
  subscribers?: number;
  history?: number;
  eventBytes?: number;
  timeoutS?: number;
  workers?: number;
}

/** Our server as a process on `port`, restartable there, with `env` over the bench's own. */
export function serverProcess(port: number, env: Record<string, string>): RestartableServer {
  let current: SpawnedServer | null = null;
  return {
    base: `http://127.0.0.1:${port}`,
    async start() {
      current = await spawnServer('services/server/src/main.ts', {
        env: { ...env, PORT: String(port), SSE_PUBLISH_TOKEN: BENCH_TOKEN },
        stderr: 'inherit',
        timeoutMs: 30_000,
      });
    },
    async stop() {
      await current?.stop();
      current = null;
    },
  };
}

/** History settings that hold K+1 events of `eventBytes` without trimming any. */
export function historyEnv(history: number, eventBytes: number): Record<string, string> {
  const events = history + 1;
  const bytes = Math.min(1024 ** 3, Math.max(1024 ** 2, events * (eventBytes + 256)));
  return {
    SSE_HISTORY_SIZE: String(Math.max(1000, events)),
    SSE_HISTORY_MAX_BYTES: String(bytes),
    SSE_REDIS_MAX_STREAM_LENGTH: String(Math.max(100_000, events)),
  };
}

const COLUMNS = [
  'server',
  'served',
  'back (listening)',
  'first full replay',
  'last full replay',
  'replay p50',
  'replay p99',
  'wait p99',
  'refused',
  'retried',
  'reset',
  'lost/dup/order/corrupt',
  'peak RSS',
  'loop p99',
];

function row(name: string, f: Figures): string[] {
  return [
    name,
    `${f.subscribers_served}/${f.subscribers}`,
    formatFigure('x_ms', f.server_listening_ms),
    formatFigure('x_ms', f.first_full_replay_ms),
    formatFigure('x_ms', f.last_full_replay_ms),
    formatFigure('x_ms', f.full_replay_p50_ms),
    formatFigure('x_ms', f.full_replay_p99_ms),
    formatFigure('x_ms', f.reconnect_wait_p99_ms),
    String(f.attempts_refused),
    String(f.streams_retried),
    String(f.subscribers_reset),
    `${f.lost}/${f.duplicated}/${f.out_of_order}/${f.corrupted}`,
    formatFigure('x_bytes', f.server_rss_peak_bytes),
    formatFigure('x_ms', f.server_event_loop_lag_p99_max_ms),
  ];
}

/** One broker's run: its server (and redis-server), started, stormed, stopped. */
async function runBroker(
  broker: 'memory' | 'redis',
  options: Required<Omit<StormBenchOptions, 'workers' | 'broker' | 'out'>> &
    Pick<StormBenchOptions, 'workers'>,
) {
  let redis: RedisProcess | null = null;
  const env: Record<string, string> = {
    SSE_BROKER: broker,
    ...historyEnv(options.history, options.eventBytes),
  };
  if (broker === 'redis') {
    redis = await startRedis();
    env.REDIS_URL = redis.url;
  }
  const server = serverProcess(await freePort(), env);
  try {
    await server.start();
    return await runStormRestart({
      server,
      subscribers: options.subscribers,
      history: options.history,
      eventBytes: options.eventBytes,
      workers: options.workers,
      timeoutS: options.timeoutS,
      channel: options.config.storm.channel,
      token: BENCH_TOKEN,
      label: `ours-${broker}`,
      expectResets: broker === 'memory',
    });
  } finally {
    await server.stop();
    await redis?.stop();
  }
}

const FAULTS = ['subscribers_not_served', 'lost', 'duplicated', 'out_of_order', 'corrupted'];

export async function runStormBench(options: StormBenchOptions): Promise<number> {
  const { config } = options;
  const settings = {
    config,
    subscribers: options.subscribers ?? config.storm.subscribers,
    history: options.history ?? config.storm.history,
    eventBytes: options.eventBytes ?? config.storm.eventBytes,
    timeoutS: options.timeoutS ?? config.storm.timeout,
    workers: options.workers,
  };
  // main.ts takes memory, redis or both for the storm bench.
  const brokers: ('memory' | 'redis')[] =
    options.broker === 'both' ? ['memory', 'redis'] : [options.broker as 'memory' | 'redis'];
  const startedAt = new Date().toISOString();
  const figures: Figures = {};
  const warnings: string[] = [];
  const limited: string[] = [];
  const rows: string[][] = [];
  let failed = false;
  let last: Omit<Report, 'environment' | 'startedAt'> | null = null;
  for (const broker of brokers) {
    log(`\n== ours-${broker}: restart storm`);
    try {
      const r = await runBroker(broker, settings);
      last = r;
      for (const [k, v] of Object.entries(r.figures)) figures[`${broker}_${k}`] = v;
      warnings.push(...labelled(`ours-${broker}`, r.warnings));
      limited.push(...labelled(`ours-${broker}`, r.harnessLimited ?? []));
      rows.push(row(`ours-${broker}`, r.figures));
      if (FAULTS.some((k) => (r.figures[k] ?? 0) > 0)) failed = true;
    } catch (err) {
      failed = true;
      warnings.push(`ours-${broker}: ${(err as Error).message}`);
      log(red(`ours-${broker}: ${(err as Error).message}`));
    }
  }
  process.stdout.write(
    `\nRestart storm: ${settings.subscribers} live subscribers, the server restarted, ${settings.history} events of ~${settings.eventBytes} bytes published to it; times from the SIGTERM\n`,
  );
  process.stdout.write(`${textTable(COLUMNS, rows)}\n`);
  for (const w of warnings) log(red(`\n!!! ${w} !!!`));
  const report: Report = {
    scenario: 'bench-storm',
    startedAt,
    target: brokers.map((b) => `ours-${b}`).join(' '),
    parameters: {
      broker: options.broker,
      subscribers: settings.subscribers,
      history: settings.history,
      event_bytes: settings.eventBytes,
      timeout_s: settings.timeoutS,
      workers: last?.parameters.workers ?? null,
      receiver: 'raw',
    },
    environment: environment(),
    figures,
    series: last?.series ?? {
      latency: [],
      latencyLabel: '',
      throughput: [],
      throughputLabel: '',
    },
    warnings,
    harnessLimited: limited,
  };
  const files = await writeReport(report, options.out);
  log(`\nreport: ${files.markdown}\n        ${files.json}`);
  if (failed) return 1;
  if (limited.length > 0) {
    log(yellow('\nHARNESS-LIMITED: the load generator may have set these figures'));
    return 3;
  }
  log(green('\nstorm bench done'));
  return 0;
}
