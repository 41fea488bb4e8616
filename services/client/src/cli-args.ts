// Command-line parsing (node:util parseArgs, strict). Any problem is a UsageError: the CLI prints
// it with the usage text on stderr and exits 2.
import { parseArgs } from 'node:util';
import { headerName, headerValue, httpUrl } from './config.ts';

export const USAGE = `Usage: npm run client -- [options]
       node services/client/src/main.ts [options]

Reads a Server-Sent Events stream and prints every event as soon as it arrives.

Options:
  --url URL              stream URL (default from config/client.yaml, env SSE_URL)
  --config FILE          config file (default config/client.yaml, env SSE_CLIENT_CONFIG)
  --json                 stdout: one JSON object {"id","event","data"} per event, nothing else
  --reconnect            reconnect like a browser EventSource (Last-Event-ID, retry:, backoff)
  --max-events N         stop (exit 0) after N events
  --last-event-id ID     send Last-Event-ID: ID on the first request
  --header "Name: value" extra request header (repeatable)
  --timeout-ms N         connect timeout and idle timeout in ms (no bytes for N ms = dead)
  --metrics-port N       serve Prometheus metrics on http://<metrics.host>:N/metrics (0 = off)
  -h, --help             show this help

Exit codes: 0 stream finished (or 204, or --max-events reached), 1 connection error,
2 bad arguments or config, 130 SIGINT, 143 SIGTERM.`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CliArgs {
  help: boolean;
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

function integer(
  flag: string,
  raw: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(
      `${flag} needs an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return Number(raw);
}

function header(raw: string): [string, string] {
  const colon = raw.indexOf(':');
  const name = colon > 0 ? raw.slice(0, colon).trim() : '';
  const value = colon > 0 ? raw.slice(colon + 1).trim() : '';
  if (!headerName.test(name) || !headerValue.test(value)) {
    throw new UsageError(
      `--header needs "Name: value" with a valid header name, got ${JSON.stringify(raw)}`,
    );
  }
  return [name, value];
}

export function parseCliArgs(argv: string[]): CliArgs {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
  if (values.url !== undefined && !httpUrl.safeParse(values.url).success) {
    throw new UsageError(
      `--url needs an absolute http:// or https:// URL, got ${JSON.stringify(values.url)}`,
    );
  }
  if (values.config === '') throw new UsageError('--config needs a file name');
  if (values['last-event-id'] !== undefined && /[\0\r\n]/.test(values['last-event-id'])) {
    throw new UsageError('--last-event-id must not contain NULL, CR or LF');
  }
  const headers: Record<string, string> = {};
  for (const raw of values.header ?? []) {
    const [name, value] = header(raw);
    headers[name] = value;
  }
  return {
    help: values.help ?? false,
    url: values.url,
    config: values.config,
    json: values.json ?? false,
    reconnect: values.reconnect ? true : undefined,
    maxEvents: integer('--max-events', values['max-events'], 1, Number.MAX_SAFE_INTEGER),
    lastEventId: values['last-event-id'],
    headers,
    timeoutMs: integer('--timeout-ms', values['timeout-ms'], 0, 86_400_000),
    metricsPort: integer('--metrics-port', values['metrics-port'], 0, 65535),
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      url: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      reconnect: { type: 'boolean' },
      'max-events': { type: 'string' },
      'last-event-id': { type: 'string' },
      header: { type: 'string', multiple: true },
      'timeout-ms': { type: 'string' },
      'metrics-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
