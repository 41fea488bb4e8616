// The server process: config -> app -> listen; SIGTERM/SIGINT shut down gracefully (exit 0).
import { ConfigError } from '../../shared/config-file.ts';
import { createSseServer } from './app.ts';
import { loadServerConfig } from './config.ts';
import { createLogger } from './logger.ts';

let config: ReturnType<typeof loadServerConfig>;
const deprecations: string[] = [];
try {
  config = loadServerConfig(process.env, {}, deprecations);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`http-sse server: config error: ${err.message}\n`);
  process.exit(2);
}

const logger = createLogger(config.logLevel);
for (const message of deprecations) logger.warn({ event: 'config_deprecated' }, message);
const server = createSseServer(config, { logger });

// Signal handlers first: a signal that arrives while starting must still shut down cleanly.
let signals = 0;
function onSignal(signal: NodeJS.Signals): void {
  signals++;
  if (signals > 1) {
    logger.warn({ event: 'forced_exit', signal }, 'second signal: exiting now');
    process.exit(1);
  }
  logger.info({ event: 'signal', signal }, `received ${signal}: shutting down`);
  const guard = setTimeout(() => {
    logger.error({ event: 'shutdown_timeout' }, 'shutdown did not finish in time');
    process.exit(1);
  }, config.shutdownTimeoutMs + 1000);
  guard.unref();
  server.shutdown().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

try {
  const address = await server.listen();
  logger.info(
    {
      event: 'listening',
      host: address.address,
      port: address.port,
      metricsPort: config.metrics.port || undefined,
    },
    `listening on http://${address.address}:${address.port}`,
  );
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  logger.fatal(
    { event: 'listen_failed', code: e.code },
    `cannot listen on ${config.host}:${config.port}: ${e.message}`,
  );
  process.exit(1);
}
if (!config.publish.token) {
  logger.warn(
    { event: 'publish_open' },
    'publish.token is not set: publishing is accepted only from loopback addresses',
  );
}
