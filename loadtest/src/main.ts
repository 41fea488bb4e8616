// npm run loadtest -- --scenario <stream|fanout|connections> [options]
// Exit codes: 0 done; 1 unreachable target, a failed run, or events lost/duplicated; 2 bad flags.
import { parseArgs } from 'node:util';
import { ConfigError } from '../../services/shared/config-file.ts';
import { runBench } from './bench.ts';
import { type LoadtestConfig, loadLoadtestConfig } from './config.ts';
import { compareReports, readReport } from './report/compare.ts';
import { environment, type Report, writeReport } from './report/report.ts';
import { figuresTable } from './report/table.ts';
import { runConnections } from './scenarios/connections.ts';
import { runFanout } from './scenarios/fanout.ts';
import { runStream } from './scenarios/stream.ts';

export const USAGE = `usage: npm run loadtest -- --scenario <stream|fanout|connections> [options]
       npm run bench:fanout                (= --scenario fanout --bench)

  --scenario NAME     stream | fanout | connections
  --url BASE          server base URL (default from config/loadtest.yaml: http://127.0.0.1:24856)
  --connections N     stream: concurrent connections; fanout: publishing connections
  --duration S        seconds of load (stream, fanout)
  --rate R            fanout: events published per second
  --subscribers N     fanout, connections: open streams
  --out DIR           where reports go (default loadtest/results)
  --compare FILE      print this run's figures beside an earlier report's, with percentages
  --json              print the report as JSON on stdout (everything else on stderr)
  --bench             fanout benchmark: 1000 and 5000 subscribers at rising rates, ours against a
                      pre-framed raw node:http reference (starts both servers unless --url)
  --no-progress       no progress bars
  --help              this text`;

class UsageError extends Error {}

function positive(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`--${name} must be a positive integer, got "${raw}"`);
  return Number(raw);
}

function parse(argv: string[]) {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        scenario: { type: 'string' },
        url: { type: 'string' },
        connections: { type: 'string' },
        duration: { type: 'string' },
        rate: { type: 'string' },
        subscribers: { type: 'string' },
        out: { type: 'string' },
        compare: { type: 'string' },
        json: { type: 'boolean' },
        bench: { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const scenario = values.scenario as string | undefined;
  if (!values.help && scenario === undefined) throw new UsageError('--scenario is required');
  if (scenario !== undefined && !['stream', 'fanout', 'connections'].includes(scenario)) {
    throw new UsageError(`unknown scenario "${scenario}" (stream, fanout, connections)`);
  }
  if (values.bench && scenario !== 'fanout')
    throw new UsageError('--bench goes with --scenario fanout');
  if (values.url !== undefined) {
    try {
      const u = new URL(values.url as string);
      if (!/^https?:$/.test(u.protocol)) throw new Error();
    } catch {
      throw new UsageError(`--url must be an http(s) URL, got "${values.url}"`);
    }
  }
  return {
    help: Boolean(values.help),
    scenario: scenario as 'stream' | 'fanout' | 'connections',
    url: values.url as string | undefined,
    connections: positive('connections', values.connections as string | undefined),
    duration: positive('duration', values.duration as string | undefined),
    rate: positive('rate', values.rate as string | undefined),
    subscribers: positive('subscribers', values.subscribers as string | undefined),
    out: values.out as string | undefined,
    compare: values.compare as string | undefined,
    json: Boolean(values.json),
    bench: Boolean(values.bench),
    progress: !values['no-progress'],
  };
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

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`loadtest: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let config: LoadtestConfig;
  try {
    config = loadLoadtestConfig(process.env, { url: args.url, out: args.out });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`loadtest: config error: ${err.message}\n`);
    return 2;
  }
  const old = args.compare !== undefined ? readReportOrNull(args.compare) : undefined;
  if (old === null) return 2;
  const progress = args.progress && process.stderr.isTTY === true;

  if (args.bench) return runBench({ url: args.url, config, out: config.out, progress });

  const base = config.url.replace(/\/+$/, '');
  const unreachable = await reachable(base);
  if (unreachable !== null) {
    process.stderr.write(`loadtest: cannot reach ${base}: ${unreachable}\n`);
    return 1;
  }
  const startedAt = new Date().toISOString();
  let partial: Omit<Report, 'environment' | 'startedAt'>;
  if (args.scenario === 'stream') {
    partial = await runStream({
      base,
      connections: args.connections ?? config.stream.connections,
      duration: args.duration ?? config.stream.duration,
      progress,
    });
  } else if (args.scenario === 'fanout') {
    partial = await runFanout({
      ...config.fanout,
      base,
      subscribers: args.subscribers ?? config.fanout.subscribers,
      rate: args.rate ?? config.fanout.rate,
      duration: args.duration ?? config.fanout.duration,
      connections: args.connections ?? config.fanout.connections,
      token: config.token,
      progress,
    });
  } else {
    partial = await runConnections({
      ...config.connections,
      base,
      subscribers: args.subscribers ?? config.connections.subscribers,
      progress,
    });
  }
  const report: Report = { ...partial, startedAt, environment: environment() };
  const files = await writeReport(report, config.out);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const out = args.json ? log : (s: string) => process.stdout.write(`${s}\n`);
  out(`\n${report.scenario} against ${report.target}\n${figuresTable(report.figures)}`);
  for (const w of report.warnings) log(`\n!!! ${w} !!!`);
  if (old) out(`\n${compareReports(old, report)}`);
  log(`\nreport: ${files.markdown}\n        ${files.json}\n        ${files.svg}`);
  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  const lostOrDup = (report.figures.lost ?? 0) + (report.figures.duplicated ?? 0);
  return lostOrDup > 0 ? 1 : 0;
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
