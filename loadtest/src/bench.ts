// `npm run bench:fanout`: the fan-out benchmark. For each server, started one at a time on a
// random port (only one loads the machine at a time): its capacity (highest publish rate with the
// delivery p99 under the target for N subscribers, deliveries/s), fixed fan-out points (1000 x 50/s
// and 5000 x 10/s: publish latency, delivery latency, server CPU per delivery, lost), and the
// example stream. Servers: ours (memory broker, Redis broker, or both: --broker), the pre-framed
// node:http reference, naive express, better-sse. With --url, only the given server is measured.
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { type SpawnedServer, spawnServer } from '../../services/shared/spawn-server.ts';
import type { LoadtestConfig } from './config.ts';
import { defaultWorkers } from './fanout/rig.ts';
import { green, log, red, yellow } from './output.ts';
import { type RedisProcess, startRedis } from './redis-server.ts';
import { environment, type Figures, type Report, writeReport } from './report/report.ts';
import { formatFigure, textTable } from './report/table.ts';
import { runCapacity } from './scenarios/capacity.ts';
import { runFanout } from './scenarios/fanout.ts';
import { runStream } from './scenarios/stream.ts';

export type Broker = 'memory' | 'redis' | 'both';

const FIXED: [number, number][] = [
  [1000, 50],
  [5000, 10],
];
const FIXED_SECONDS = 6;
const TOKEN = 'bench-token';

interface TargetSpec {
  name: string;
  /** Runs the byte-exact /sse/test stream check (better-sse frames events its own way). */
  stream: boolean;
  start: () => Promise<{ base: string; stop: () => Promise<void> }>;
}

async function serverTarget(script: string, env: Record<string, string> = {}) {
  const server: SpawnedServer = await spawnServer(script, {
    // LOG_LEVEL stays info: the listening line is what spawnServer waits for.
    env: { SSE_PUBLISH_TOKEN: TOKEN, ...env },
    stderr: 'inherit',
    timeoutMs: 30_000,
  });
  return { base: server.base, stop: () => server.stop() };
}

/** Our server with the Redis broker: its own redis-server, stopped with it. */
async function redisTarget() {
  const redis: RedisProcess = await startRedis();
  try {
    const server = await serverTarget('services/server/src/main.ts', {
      SSE_BROKER: 'redis',
      REDIS_URL: redis.url,
    });
    return {
      base: server.base,
      stop: async () => {
        await server.stop();
        await redis.stop();
      },
    };
  } catch (err) {
    await redis.stop();
    throw err;
  }
}

function targets(broker: Broker): TargetSpec[] {
  const list: TargetSpec[] = [];
  if (broker !== 'redis') {
    list.push({
      name: 'ours-memory',
      stream: true,
      start: () => serverTarget('services/server/src/main.ts', { SSE_BROKER: 'memory' }),
    });
  }
  if (broker !== 'memory') list.push({ name: 'ours-redis', stream: false, start: redisTarget });
  list.push(
    {
      name: 'preframed',
      stream: true,
      start: () => serverTarget('loadtest/reference/preframed-server.ts'),
    },
    {
      name: 'express-naive',
      stream: true,
      start: () => serverTarget('loadtest/reference/express-naive-server.ts'),
    },
    {
      name: 'better-sse',
      stream: false,
      start: () => serverTarget('loadtest/reference/better-sse-server.ts'),
    },
  );
  return list;
}

export async function runBench(options: {
  urls: string[];
  config: LoadtestConfig;
  out: string;
  progress: boolean;
  broker: Broker;
  subscribers?: number;
  workers?: number;
  p99TargetMs: number;
}): Promise<number> {
  const subscribers = options.subscribers ?? 1000;
  const specs: TargetSpec[] =
    options.urls.length > 0
      ? [
          {
            name: 'target',
            stream: true,
            start: async () => ({
              base: options.urls[0]!.replace(/\/+$/, ''),
              stop: async () => {},
            }),
          },
        ]
      : targets(options.broker);
  const token = options.urls.length > 0 ? options.config.token : TOKEN;
  const startedAt = new Date().toISOString();
  const figures: Figures = {};
  const warnings: string[] = [];
  const limited: string[] = [];
  const capacityRows: string[][] = [];
  const fixedRows: string[][] = [];
  const streamRows: string[][] = [];
  const capacitySeries: { rate: number; p99: number | null; ok: boolean; server: string }[] = [];
  let series: Report['series'] | null = null;

  for (const spec of specs) {
    log(`\n== ${spec.name}: starting`);
    let target: { base: string; stop: () => Promise<void> };
    try {
      target = await spec.start();
    } catch (err) {
      warnings.push(`${spec.name}: could not start: ${(err as Error).message}`);
      log(red(`${spec.name}: could not start: ${(err as Error).message}`));
      continue;
    }
    try {
      log(
        `== ${spec.name} (${target.base}): capacity, ${subscribers} subscribers, p99 <= ${options.p99TargetMs} ms`,
      );
      const cap = await runCapacity({
        ...options.config.fanout,
        bases: [target.base],
        subscribers,
        workers: options.workers ?? defaultWorkers(subscribers),
        p99TargetMs: options.p99TargetMs,
        startRate: 20,
        maxRate: 20_000,
        stepSeconds: 3,
        warmup: 1,
        connections: 64,
        precision: 0.15,
        token,
      });
      const c = cap.figures;
      for (const k of [
        'capacity_events_per_s',
        'capacity_deliveries_per_s',
        'capacity_delivery_p99_ms',
        'capacity_publish_p99_ms',
        'capacity_server_cpu_per_delivery_ms',
        'first_unsustained_rate_per_s',
        'capacity_harness_event_loop_p99_max_ms',
        'harness_limited',
      ]) {
        figures[`${spec.name}_${k}`] = c[k] ?? null;
      }
      for (const p of cap.series.capacity ?? []) capacitySeries.push({ ...p, server: spec.name });
      warnings.push(...cap.warnings.map((w) => `${spec.name} capacity: ${w}`));
      limited.push(...(cap.harnessLimited ?? []).map((w) => `${spec.name} capacity: ${w}`));
      capacityRows.push([
        spec.name,
        formatFigure('x_per_s', c.capacity_events_per_s),
        formatFigure('x_per_s', c.capacity_deliveries_per_s),
        formatFigure('x_ms', c.capacity_delivery_p99_ms),
        formatFigure('x_per_s', c.first_unsustained_rate_per_s),
        formatFigure('x_ms', c.capacity_harness_event_loop_p99_max_ms),
        c.harness_limited ? 'yes' : 'no',
      ]);

      for (const [n, rate] of FIXED) {
        log(`== ${spec.name}: fan-out ${n} x ${rate}/s`);
        const r = await runFanout({
          ...options.config.fanout,
          bases: [target.base],
          subscribers: n,
          rate,
          duration: FIXED_SECONDS,
          warmup: 1,
          connections: 16,
          workers: options.workers ?? defaultWorkers(n),
          token,
          progress: options.progress,
        });
        const f = r.figures;
        const key = `${spec.name}_${n}x${rate}`;
        for (const k of [
          'publish_achieved_per_s',
          'publish_latency_p50_ms',
          'publish_latency_p99_ms',
          'deliveries_per_s',
          'delivery_p50_ms',
          'delivery_p99_ms',
          'server_cpu_per_delivery_ms',
          'lost',
          'duplicated',
          'harness_event_loop_p99_max_ms',
          'harness_worker_cpu_max_pct',
          'harness_limited',
        ]) {
          figures[`${key}_${k}`] = f[k] ?? null;
        }
        if (spec.name.startsWith('ours') && n === 5000 && !series) series = r.series;
        warnings.push(...r.warnings.map((w) => `${key}: ${w}`));
        limited.push(...(r.harnessLimited ?? []).map((w) => `${key}: ${w}`));
        fixedRows.push([
          spec.name,
          `${n} x ${rate}/s`,
          formatFigure('x_per_s', f.publish_achieved_per_s),
          formatFigure('x_ms', f.publish_latency_p50_ms),
          formatFigure('x_ms', f.publish_latency_p99_ms),
          formatFigure('x_ms', f.delivery_p50_ms),
          formatFigure('x_ms', f.delivery_p99_ms),
          formatFigure('x_ms', f.server_cpu_per_delivery_ms),
          String(f.lost),
          formatFigure('x_ms', f.harness_event_loop_p99_max_ms),
          formatFigure('x_pct', f.harness_worker_cpu_max_pct),
          f.harness_limited ? 'yes' : 'no',
        ]);
      }

      if (!spec.stream) continue;
      log(`== ${spec.name}: stream, 100 connections`);
      const s = await runStream({
        base: target.base,
        connections: 100,
        duration: 5,
        progress: options.progress,
      });
      figures[`${spec.name}_stream_streams_per_s`] = s.figures.streams_per_s ?? null;
      figures[`${spec.name}_stream_latency_p99_ms`] = s.figures.latency_p99_ms ?? null;
      streamRows.push([
        spec.name,
        formatFigure('x_per_s', s.figures.streams_per_s),
        formatFigure('x_ms', s.figures.latency_p99_ms),
        String(s.figures.errors),
      ]);
    } finally {
      await target.stop();
    }
  }

  const print = (s: string) => process.stdout.write(`${s}\n`);
  print(
    `\nCapacity: highest publish rate with delivery p99 <= ${options.p99TargetMs} ms, ${subscribers} subscribers, nothing lost`,
  );
  print(
    textTable(
      [
        'server',
        'events/s',
        'deliveries/s',
        'p99 there',
        'first failing rate',
        'harness loop p99 there',
        'harness-limited',
      ],
      capacityRows,
    ),
  );
  print(
    '\nFixed fan-out points (publish latency: request -> 202; delivery: publish -> subscriber)',
  );
  print(
    textTable(
      [
        'server',
        'fan-out',
        'achieved',
        'publish p50',
        'publish p99',
        'delivery p50',
        'delivery p99',
        'server CPU/delivery',
        'lost',
        'harness loop p99',
        'worker CPU',
        'harness-limited',
      ],
      fixedRows,
    ),
  );
  print('\n/sse/test?count=10&interval_ms=0, 100 connections (autocannon)');
  print(textTable(['server', 'streams/s', 'p99', 'errors'], streamRows));
  for (const w of warnings) log(red(`\n!!! ${w} !!!`));

  const report: Report = {
    scenario: 'bench-fanout',
    startedAt,
    target: specs.map((s) => s.name).join(' '),
    parameters: {
      broker: options.broker,
      capacity_subscribers: subscribers,
      p99_target_ms: options.p99TargetMs,
      fixed: FIXED.map(([n, r]) => `${n}x${r}`).join(' '),
      cpus: availableParallelism(),
    },
    environment: environment(),
    figures,
    series: {
      ...(series ?? {
        latency: [],
        latencyLabel: 'delivery latency',
        throughput: [],
        throughputLabel: 'deliveries per second',
      }),
      capacity: capacitySeries,
    },
    warnings,
    harnessLimited: limited,
  };
  const files = await writeReport(report, options.out);
  writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  log(`\nreport: ${files.markdown}\n        ${files.svg}`);
  if (limited.length > 0) log(yellow('\nHARNESS-LIMITED in places: see the report'));
  const lost = Object.entries(figures)
    .filter(([k]) => k.endsWith('_lost') || k.endsWith('_duplicated'))
    .reduce((n, [, v]) => n + (v ?? 0), 0);
  if (lost > 0 || specs.length === 0) return 1;
  if (warnings.some((w) => w.includes('could not start'))) return 1;
  if (limited.length > 0) return 3;
  log(green('\nbench done'));
  return 0;
}
