// Command-line parsing (services/shared/cli.ts on node:util parseArgs, strict). Any problem is a
// UsageError: the CLI prints it with the usage text on stderr and exits 2.
import {
  headerFlags,
  httpUrlFlag,
  integerFlag,
  parseFlags,
  positiveIntegerFlag,
  UsageError,
} from '../../shared/cli.ts';

export { UsageError };

export const USAGE = `Usage: npm run client -- [options] [URL]
       node services/client/src/main.ts [options] [URL]

Reads a Server-Sent Events stream and prints every event as soon as it arrives.

Options:
  URL, --url URL         stream URL (default from config/client.yaml, env SSE_URL); giving both
                         forms is an error unless they are the same URL
  --config FILE          config file (default config/client.yaml, env SSE_CLIENT_CONFIG)
  --json                 stdout: one JSON object {"id","event","data"} per event, nothing else
  --reconnect            reconnect like a browser EventSource (Last-Event-ID, retry:, backoff)
  --max-events N         stop (exit 0) after N events
  --last-event-id ID     send Last-Event-ID: ID on the first request
  --header "Name: value" extra request header (repeatable)
  --timeout-ms N         connect timeout and idle timeout in ms (no bytes for N ms = dead)
  --metrics-port N       serve Prometheus metrics on http://<metrics.host>:N/metrics (0 = off)
  --version              print the client's version
  -h, --help             show this help

Exit codes: 0 stream finished (or 204, or --max-events reached), 1 connection error,
2 bad arguments or config, 130 SIGINT, 143 SIGTERM.`;

export interface CliArgs {
  help: boolean;
  version: boolean;
  url?: string;
  config?: string;
  json: boolean;
  reconnect?: true;
  maxEvents?: number;
  lastEventId?: string;
  headers: Record<string, string>;
  timeoutMs?: number;
  metricsPort?: number;
}

const OPTIONS = {
  url: { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
  reconnect: { type: 'boolean' },
  'max-events': { type: 'string' },
  'last-event-id': { type: 'string' },
  header: { type: 'string', multiple: true },
  'timeout-ms': { type: 'string' },
  'metrics-port': { type: 'string' },
  version: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The stream URL from `--url` and/or one positional argument (both: they must agree). */
function streamUrl(flag: string | undefined, positionals: string[]): string | undefined {
  if (positionals.length > 1) {
    throw new UsageError(`expected at most one URL argument, got ${positionals.length}`);
  }
  const positional = httpUrlFlag('the URL argument', positionals[0]);
  const url = httpUrlFlag('--url', flag);
  if (url !== undefined && positional !== undefined && url !== positional) {
    throw new UsageError(
      `the URL argument ${JSON.stringify(positional)} and --url ${JSON.stringify(url)} differ; give one`,
    );
  }
  return url ?? positional;
}

export function parseCliArgs(argv: string[]): CliArgs {
  const { values, positionals } = parseFlags(argv, OPTIONS, true);
  if (values.config === '') throw new UsageError('--config needs a file name');
  const lastEventId = values['last-event-id'];
  if (lastEventId !== undefined && /[\0\r\n]/.test(lastEventId)) {
    throw new UsageError('--last-event-id must not contain NULL, CR or LF');
  }
  return {
    help: values.help ?? false,
    version: values.version ?? false,
    url: streamUrl(values.url, positionals),
    config: values.config,
    json: values.json ?? false,
    reconnect: values.reconnect ? true : undefined,
    maxEvents: positiveIntegerFlag('--max-events', values['max-events']),
    lastEventId,
    headers: headerFlags('--header', values.header),
    timeoutMs: integerFlag('--timeout-ms', values['timeout-ms'], 0, 86_400_000),
    metricsPort: integerFlag('--metrics-port', values['metrics-port'], 0, 65535),
  };
}
