// `npm run bench:fanout`: the fan-out benchmark. 1000 and 5000 subscribers in this one process,
// publishing at rising rates, against our server and, in the same run, a pre-framed raw node:http
// reference (loadtest/reference/prefamed-server.ts); also the example stream and the memory per
// idle connection of both. Prints the tables and writes one report.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { LoadtestConfig } from './config.ts';
import { environment, type Figures, type Report, writeReport } from './report/report.ts';
import { formatFigure, textTable } from './report/table.ts';
import { runConnections } from './scenarios/connections.ts';
import { runFanout } from './scenarios/fanout.ts';
import { runStream } from './scenarios/stream.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const STEPS: [number, number][] = [
  [1000, 10],
  [1000, 50],
  [1000, 100],
  [5000, 10],
  [5000, 20],
];
const STEP_SECONDS = 8;
const TOKEN = 'bench-token';

interface Target {
  name: 'ours' | 'reference' | 'express-naive';
  base: string;
  child: ChildProcess | null;
}

async function startChild(name: Target['name'], script: string): Promise<Target> {
  const child = spawn(process.execPath, [script], {
    cwd: root,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      SSE_PUBLISH_TOKEN: TOKEN,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const onData = (s: string) => {
      buf += s;
      const line = buf.split('\n').find((l) => l.includes('"event":"listening"'));
      if (!line) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve((JSON.parse(line) as { port: number }).port);
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`${name} server exited (${code}) before listening`)),
    );
  });
  return { name, base: `http://127.0.0.1:${port}`, child };
}

async function stop(target: Target): Promise<void> {
  const child = target.child;
  if (!child || child.exitCode !== null) return;
  child.kill('SIGTERM');
  await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 7000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

export async function runBench(options: {
  url?: string;
  config: LoadtestConfig;
  out: string;
  progress: boolean;
}): Promise<number> {
  const targets: Target[] = [];
  const log = (s: string) => process.stderr.write(`${s}\n`);
  try {
    if (options.url) {
      targets.push({ name: 'ours', base: options.url.replace(/\/+$/, ''), child: null });
    } else {
      targets.push(await startChild('ours', 'services/server/src/main.ts'));
      targets.push(await startChild('reference', 'loadtest/reference/prefamed-server.ts'));
    }
    // The stream comparison also runs against a naive express handler (no channels there).
    const streamTargets = [...targets];
    if (!options.url) {
      streamTargets.push(
        await startChild('express-naive', 'loadtest/reference/express-naive-server.ts'),
      );
      targets.push(streamTargets.at(-1)!);
    }
    const fanoutTargets = targets.filter((t) => t.name !== 'express-naive');
    const token = options.url ? options.config.token : TOKEN;
    const startedAt = new Date().toISOString();
    const figures: Figures = {};
    const fanoutRows: string[][] = [];
    const warnings: string[] = [];
    let series: Report['series'] | null = null;

    // Memory first, on servers that have not served anything yet: a process that already grew
    // for the fan-out steps reuses that memory and would show next to nothing per connection.
    const memoryRows: string[][] = [];
    for (const t of fanoutTargets) {
      log(`\n== 5000 idle connections against ${t.name}`);
      const r = await runConnections({
        base: t.base,
        subscribers: 5000,
        rampRate: 2500,
        channel: 'bench-idle',
        holdMs: 2000,
        progress: options.progress,
      });
      figures[`${t.name}_idle_rss_per_connection_kb`] =
        r.figures.server_rss_per_connection_kb ?? null;
      memoryRows.push([
        t.name,
        formatFigure('x_kb', r.figures.server_rss_per_connection_kb ?? null),
        formatFigure('x_kb', r.figures.server_heap_per_connection_kb ?? null),
        String(r.figures.failed),
      ]);
    }

    for (const [subscribers, rate] of STEPS) {
      for (const t of fanoutTargets) {
        log(`\n== fanout ${subscribers} x ${rate}/s against ${t.name} (${t.base})`);
        const r = await runFanout({
          ...options.config.fanout,
          base: t.base,
          subscribers,
          rate,
          duration: STEP_SECONDS,
          connections: 2,
          payloadBytes: 40,
          token,
          progress: options.progress,
        });
        const f = r.figures;
        const key = `${t.name}_${subscribers}x${rate}`;
        for (const name of [
          'deliveries_per_s',
          'delivery_latency_p50_ms',
          'delivery_latency_p99_ms',
          'delivery_latency_max_ms',
          'lost',
          'duplicated',
          'server_cpu_per_delivery_us',
          'server_rss_per_idle_connection_kb',
        ]) {
          figures[`${key}_${name}`] = f[name] ?? null;
        }
        warnings.push(...r.warnings.map((w) => `${key}: ${w}`));
        if (t.name === 'ours' && subscribers === 5000 && rate === 10) series = r.series;
        fanoutRows.push([
          t.name,
          String(subscribers),
          String(rate),
          formatFigure('x_per_s', f.deliveries_per_s ?? null),
          formatFigure('x_ms', f.delivery_latency_p50_ms ?? null),
          formatFigure('x_ms', f.delivery_latency_p99_ms ?? null),
          formatFigure('x_ms', f.delivery_latency_max_ms ?? null),
          String(f.lost),
          String(f.duplicated),
          formatFigure('x_us', f.server_cpu_per_delivery_us ?? null),
        ]);
      }
    }

    const streamRows: string[][] = [];
    for (const t of streamTargets) {
      log(`\n== stream, 100 connections, against ${t.name}`);
      const r = await runStream({
        base: t.base,
        connections: 100,
        duration: STEP_SECONDS,
        progress: options.progress,
      });
      figures[`${t.name}_stream_streams_per_s`] = r.figures.streams_per_s ?? null;
      figures[`${t.name}_stream_latency_p99_ms`] = r.figures.latency_p99_ms ?? null;
      figures[`${t.name}_stream_errors`] = r.figures.errors ?? null;
      streamRows.push([
        t.name,
        formatFigure('x_per_s', r.figures.streams_per_s ?? null),
        formatFigure('x_ms', r.figures.latency_p99_ms ?? null),
        String(r.figures.errors),
      ]);
    }

    if (fanoutTargets.length === 2) {
      for (const [s, r] of STEPS) {
        const a = figures[`ours_${s}x${r}_delivery_latency_p99_ms`];
        const b = figures[`reference_${s}x${r}_delivery_latency_p99_ms`];
        figures[`p99_ours_vs_reference_${s}x${r}_ratio`] = a && b ? a / b : null;
      }
      const a = figures.ours_stream_streams_per_s;
      const b = figures.reference_stream_streams_per_s;
      figures.stream_ours_vs_reference_ratio = a && b ? a / b : null;
      const c = figures['express-naive_stream_streams_per_s'];
      figures.stream_ours_vs_express_naive_ratio = a && c ? a / c : null;
    }

    const print = (s: string) => process.stdout.write(`${s}\n`);
    print(
      '\nFan-out: delivery latency (publish -> subscriber), this process holding every subscriber',
    );
    print(
      textTable(
        [
          'server',
          'subscribers',
          'rate/s',
          'deliveries/s',
          'p50',
          'p99',
          'max',
          'lost',
          'dup',
          'server CPU/delivery',
        ],
        fanoutRows,
      ),
    );
    print('\n/sse/test?count=10&interval_ms=0, 100 connections (autocannon)');
    print(textTable(['server', 'streams/s', 'p99', 'errors'], streamRows));
    print('\nMemory per idle connection (5000 subscribers, from /metrics)');
    print(textTable(['server', 'RSS per connection', 'heap per connection', 'failed'], memoryRows));
    const ratios = Object.entries(figures).filter(([k]) => k.endsWith('_ratio'));
    if (ratios.length > 0) {
      print('\nRatios (ours / other; latency: lower is better, throughput: higher is better)');
      print(
        textTable(
          ['figure', 'ratio'],
          ratios.map(([k, v]) => [k, formatFigure(k, v)]),
        ),
      );
    }
    for (const w of warnings) process.stderr.write(`\n!!! ${w} !!!\n`);

    const report: Report = {
      scenario: 'bench-fanout',
      startedAt,
      target: targets.map((t) => `${t.name}=${t.base}`).join(' '),
      parameters: {
        steps: STEPS.map(([s, r]) => `${s}x${r}`).join(' '),
        step_seconds: STEP_SECONDS,
      },
      environment: environment(),
      figures,
      series: series ?? {
        latency: [],
        latencyLabel: 'delivery latency',
        throughput: [],
        throughputLabel: 'deliveries per second',
      },
      warnings,
    };
    const files = await writeReport(report, options.out);
    log(`\nreport: ${files.markdown}`);
    const lost = Object.entries(figures)
      .filter(([k]) => k.endsWith('_lost') || k.endsWith('_duplicated'))
      .reduce((n, [, v]) => n + (v ?? 0), 0);
    return lost > 0 ? 1 : 0;
  } finally {
    for (const t of targets) await stop(t);
  }
}
