// The harness's defaults: config/loadtest.yaml, overridden by the environment, validated by zod.
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { loadConfig } from '../../services/shared/config-file.ts';

const count = (max: number) => z.number().int().min(1).max(max);
const milliseconds = (fallback: number) => z.number().int().min(0).max(600_000).default(fallback);
/** A channel name, by the server's rule (services/server/src/sse/channel-name.ts). */
const channelName = (fallback: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/)
    .default(fallback);

export const loadtestConfigSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:24856'),
  stream: z
    .strictObject({
      connections: count(100_000).default(100),
      duration: count(3600).default(10),
    })
    .prefault({}),
  fanout: z
    .strictObject({
      subscribers: count(100_000).default(1000),
      rate: count(1_000_000).default(50),
      duration: count(3600).default(10),
      warmup: z.number().min(0).max(600).default(1),
      connections: count(10_000).default(16),
      channel: channelName('loadtest'),
      payloadBytes: z.number().int().min(0).max(60_000).default(40),
      drainMs: milliseconds(3000),
    })
    .prefault({}),
  connections: z
    .strictObject({
      subscribers: count(1_000_000).default(2000),
      rampRate: count(1_000_000).default(1000),
      channel: channelName('loadtest-idle'),
      holdMs: milliseconds(3000),
    })
    .prefault({}),
  storm: z
    .strictObject({
      subscribers: count(100_000).default(1000),
      history: count(100_000).default(1000),
      eventBytes: z.number().int().min(0).max(60_000).default(1024),
      timeout: count(3600).default(60),
      channel: channelName('storm'),
    })
    .prefault({}),
  token: z.string().default(''),
  out: z.string().min(1).default('loadtest/results'),
});

export type LoadtestConfig = z.output<typeof loadtestConfigSchema>;

export const defaultLoadtestConfigFile = fileURLToPath(
  new URL('../../config/loadtest.yaml', import.meta.url),
);

export function loadLoadtestConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Record<string, unknown> = {},
): LoadtestConfig {
  return loadConfig({
    file: env.LOADTEST_CONFIG || defaultLoadtestConfigFile,
    required: Boolean(env.LOADTEST_CONFIG),
    schema: loadtestConfigSchema,
    env,
    envMap: {
      LOADTEST_URL: { key: 'url', kind: 'string' },
      SSE_PUBLISH_TOKEN: { key: 'token', kind: 'string' },
    },
    overrides,
  });
}
