// CLI: node services/client/src/main.ts [options] (npm run client -- [options]).
// Exit codes: 0 the server ended the stream / 204 / --max-events reached; 1 connection error;
// 2 bad arguments or config; 130 SIGINT; 143 SIGTERM.
import { ConfigError } from '../../shared/config-file.ts';
import { parseCliArgs, USAGE, UsageError } from './cli-args.ts';
import { type ClientConfig, loadClientConfig } from './config.ts';
import { type CloseResult, connectEventStream } from './event-stream.ts';
import {
  type ClientMetrics,
  createClientMetrics,
  type MetricsServer,
  startMetricsServer,
} from './metrics.ts';
import { createOutput } from './output.ts';
import { closeDefaultDispatchers } from './transport.ts';

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

function fail(line: string): void {
  process.stderr.write(`sse-client: ${line}\n`);
}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseCliArgs>;
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

  let config: ClientConfig;
  try {
    config = loadClientConfig(args.config, process.env, {
      url: args.url,
      reconnect: args.reconnect,
      timeoutMs: args.timeoutMs,
      connectTimeoutMs: args.timeoutMs,
      'metrics.port': args.metricsPort,
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    fail(err.message);
    return 2;
  }

  const output = createOutput(args.json ? 'json' : 'text', process.stdout, process.stderr);
  let metrics: ClientMetrics | undefined;
  let metricsServer: MetricsServer | undefined;
  if (config.metrics.port > 0) {
    metrics = createClientMetrics();
    try {
      metricsServer = await startMetricsServer(
        metrics.registry,
        config.metrics.host,
        config.metrics.port,
      );
    } catch (err) {
      fail(
        `cannot serve metrics on ${config.metrics.host}:${config.metrics.port}: ${(err as Error).message}`,
      );
      return 1;
    }
  }

  const maxEvents = args.maxEvents ?? Number.POSITIVE_INFINITY;
  let received = 0;
  let stoppedBy: 'max-events' | NodeJS.Signals | null = null;

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

  let result: CloseResult;
  try {
    result = await handle.done;
  } finally {
    await metricsServer?.close();
    await closeDefaultDispatchers();
  }

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
