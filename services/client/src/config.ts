// Client configuration: config/client.yaml (or --config / SSE_CLIENT_CONFIG), overridden by
// environment variables, then by command-line flags; validated by zod.
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { HEADER_NAME, HEADER_VALUE, isHttpUrl } from '../../shared/cli.ts';
import { type EnvBinding, loadConfig } from '../../shared/config-file.ts';

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** An absolute http: or https: URL. */
const httpUrl = z
  .string()
  .refine(isHttpUrl, { message: 'must be an absolute http:// or https:// URL' });

export const clientConfigSchema = z.strictObject({
  url: httpUrl.default('http://127.0.0.1:24856/sse/test'),
  reconnect: z.boolean().default(false),
  retryMs: int(0, 86_400_000).default(3000),
  maxBackoffMs: int(0, 86_400_000).default(30_000),
  timeoutMs: int(0, 86_400_000).default(0),
  connectTimeoutMs: int(0, 86_400_000).default(10_000),
  maxEventBytes: int(16, 1024 * 1024 * 1024).default(1024 * 1024),
  headers: z
    .record(
      z.string().regex(HEADER_NAME, { message: 'header names must be HTTP tokens' }),
      z.string().regex(HEADER_VALUE, { message: 'header values must not hold control characters' }),
    )
    .default({}),
  metrics: z
    .strictObject({
      port: int(0, 65535).default(0),
      host: z.string().min(1).default('0.0.0.0'),
    })
    .prefault({}),
});

export type ClientConfig = z.output<typeof clientConfigSchema>;

export const clientEnv: Record<string, EnvBinding> = {
  SSE_URL: { key: 'url', kind: 'string' },
  SSE_CLIENT_RECONNECT: { key: 'reconnect', kind: 'bool' },
  SSE_CLIENT_RETRY_MS: { key: 'retryMs', kind: 'int' },
  SSE_CLIENT_MAX_BACKOFF_MS: { key: 'maxBackoffMs', kind: 'int' },
  SSE_CLIENT_TIMEOUT_MS: { key: 'timeoutMs', kind: 'int' },
  SSE_CLIENT_CONNECT_TIMEOUT_MS: { key: 'connectTimeoutMs', kind: 'int' },
  SSE_CLIENT_MAX_EVENT_BYTES: { key: 'maxEventBytes', kind: 'int' },
  SSE_CLIENT_METRICS_PORT: { key: 'metrics.port', kind: 'int' },
  SSE_CLIENT_METRICS_HOST: { key: 'metrics.host', kind: 'string' },
};

export const defaultClientConfigFile = fileURLToPath(
  new URL('../../../config/client.yaml', import.meta.url),
);

/**
 * Reads the client config: `file` (else SSE_CLIENT_CONFIG, else config/client.yaml), then the
 * environment, then `overrides` (dotted keys, from command-line flags). An explicitly named file
 * must exist. Throws ConfigError with a one-line message.
 */
export function loadClientConfig(
  file: string | undefined,
  env: Record<string, string | undefined> = process.env,
  overrides: Record<string, unknown> = {},
): ClientConfig {
  const explicit = file || env.SSE_CLIENT_CONFIG;
  return loadConfig({
    file: explicit || defaultClientConfigFile,
    required: Boolean(explicit),
    schema: clientConfigSchema,
    env,
    envMap: clientEnv,
    overrides,
  });
}
