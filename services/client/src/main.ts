// CLI: node services/client/src/main.ts [options] [URL] (npm run client -- [options] [URL]).
// Exit codes: 0 the server ended the stream / 204 / --max-events reached; 1 connection error;
// 2 bad arguments or config; 130 SIGINT; 143 SIGTERM.
import { packageVersion } from '../../shared/cli.ts';
import { ConfigError } from '../../shared/config-file.ts';
import { type CliArgs, parseCliArgs, USAGE, UsageError } from './cli-args.ts';
import { type ClientConfig, loadClientConfig } from './config.ts';
import { type CloseResult, type ConnectOptions, connectEventStream } from './event-stream.ts';
import {
  type ClientMetrics,
  createClientMetrics,
  type MetricsServer,
  startMetricsServer,
} from './metrics.ts';
import { createOutput, type Output } from './output.ts';
import { closeDefaultDispatchers } from './transport.ts';

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** What stopped the stream from our side, if anything. */
type StoppedBy = 'max-events' | NodeJS.Signals | null;

function fail(line: string): void {
  process.stderr.write(`sse-client: ${line}\n`);
}

/** The parsed arguments, or the exit code when there is nothing to run (usage, help, version). */
function readArgs(argv: string[]): CliArgs | number {
  let args: CliArgs;
  try {
    args = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`sse-client: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`http-sse client ${packageVersion()}\n`);
    return 0;
  }
  return args;
}

/** File, environment and flags merged, or null after printing the one-line config error. */
function readConfig(args: CliArgs): ClientConfig | null {
  try {
    return loadClientConfig(args.config, process.env, {
      url: args.url,
      reconnect: args.reconnect,
      timeoutMs: args.timeoutMs,
      connectTimeoutMs: args.timeoutMs,
      'metrics.port': args.metricsPort,
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    fail(err.message);
    return null;
  }
}

/** The client's metrics and their HTTP server when a metrics port is set; null if it failed. */
async function startMetrics(
  config: ClientConfig,
): Promise<{ metrics?: ClientMetrics; server?: MetricsServer } | null> {
  const { host, port } = config.metrics;
  if (port === 0) return {};
  const metrics = createClientMetrics();
  try {
    return { metrics, server: await startMetricsServer(metrics.registry, host, port) };
  } catch (err) {
    fail(`cannot serve metrics on ${host}:${port}: ${(err as Error).message}`);
    return null;
  }
}

/** The hooks that report connection changes to the metrics and the output. */
function connectionHooks(
  output: Output,
  metrics: ClientMetrics | undefined,
): Pick<ConnectOptions, 'onOpen' | 'onDisconnect' | 'onError' | 'onReconnect'> {
  return {
    onOpen: () => metrics?.setConnected(true),
    onDisconnect: () => metrics?.setConnected(false),
    onError(error, willRetry) {
      metrics?.connectionError(error.reason);
      if (willRetry) output.info(`sse-client: ${error.url}: ${error.message}; will reconnect`);
    },
    onReconnect(info) {
      metrics?.reconnecting();
      output.info(
        `sse-client: reconnecting to ${info.url} in ${info.delayMs} ms` +
          (info.lastEventId ? ` with Last-Event-ID ${JSON.stringify(info.lastEventId)}` : ''),
      );
    },
  };
}

/** Reads the stream until it stops: printing events, stopping on --max-events or a signal. */
async function streamEvents(
  config: ClientConfig,
  args: CliArgs,
  output: Output,
  metrics: ClientMetrics | undefined,
): Promise<{ result: CloseResult; stoppedBy: StoppedBy }> {
  const maxEvents = args.maxEvents ?? Number.POSITIVE_INFINITY;
  let received = 0;
  let stoppedBy: StoppedBy = null;

  const handle = connectEventStream(config.url, {
    headers: { ...config.headers, ...args.headers },
    lastEventId: args.lastEventId,
    reconnect: config.reconnect,
    retryMs: config.retryMs,
    maxBackoffMs: config.maxBackoffMs,
    timeoutMs: config.timeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
    maxEventBytes: config.maxEventBytes,
    onEvent(event) {
      if (stoppedBy !== null) return;
      output.event(event);
      if (metrics) {
        metrics.eventReceived();
        metrics.observeLag(event.data);
      }
      if (++received >= maxEvents) {
        stoppedBy = 'max-events';
        handle.close();
      }
    },
    ...connectionHooks(output, metrics),
  });

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stoppedBy !== null && stoppedBy !== 'max-events') {
      process.exit(SIGNAL_EXIT[signal] ?? 1); // second signal: do not wait any longer
    }
    stoppedBy = signal;
    handle.close();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', () => {
    // stdout closed (e.g. piped into `head`): nothing left to print to.
    stoppedBy ??= 'max-events';
    handle.close();
  });
  const result = await handle.done;
  return { result, stoppedBy };
}

/** The exit code for how the stream stopped (printing the final line or the error). */
function exitCode(result: CloseResult, stoppedBy: StoppedBy, output: Output): number {
  switch (result.reason) {
    case 'end':
    case 'no_content':
      output.finished();
      return 0;
    case 'error':
      fail(`${result.error!.url}: ${result.error!.message}`);
      return 1;
    default:
      if (stoppedBy === 'max-events' || stoppedBy === null) return 0;
      return SIGNAL_EXIT[stoppedBy] ?? 1;
  }
}

async function main(argv: string[]): Promise<number> {
  const args = readArgs(argv);
  if (typeof args === 'number') return args;
  const config = readConfig(args);
  if (config === null) return 2;
  const output = createOutput(args.json ? 'json' : 'text', process.stdout, process.stderr);
  const metrics = await startMetrics(config);
  if (metrics === null) return 1;
  try {
    const { result, stoppedBy } = await streamEvents(config, args, output, metrics.metrics);
    return exitCode(result, stoppedBy, output);
  } finally {
    await metrics.server?.close();
    await closeDefaultDispatchers();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // stdout/stderr to pipes and files are synchronous on Linux; flush anyway before exiting.
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    fail(`internal error: ${(err as Error)?.stack ?? String(err)}`);
    process.exit(1);
  },
);
