// Server configuration: config/server.yaml, overridden by environment variables, validated by zod.
import { fileURLToPath } from 'node:url';
import proxyaddr from 'proxy-addr';
import { z } from 'zod';
import { type EnvBinding, loadConfig } from '../../shared/config-file.ts';
import { isValidPattern, PATTERN_RULE } from './channel-names.ts';
import { jwksFileProblem, pemFileProblem, secretProblem } from './keys/jwt-keys.ts';

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/**
 * Throws a one-line error naming the first trustProxy entry that is not an IP address, a CIDR
 * (`10.0.0.0/8`, `fd00::/8`) or one of proxy-addr's names (`loopback`, `linklocal`,
 * `uniquelocal`): proxy-addr (http/client-address.ts) compiles the same list.
 */
export function checkTrustProxy(entries: readonly string[]): void {
  for (const entry of entries) {
    try {
      proxyaddr.compile(entry);
    } catch {
      throw new Error(
        `"${entry}" is not an IP address, a CIDR or one of loopback, linklocal, uniquelocal`,
      );
    }
  }
}

const tokenSchema = z.string().max(4096);

/** The Redis server used when neither a URL, nor sentinels, nor cluster nodes are configured. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** `host:port` (a name, an IPv4 address or a bracketed IPv6 address). */
const hostPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected host:port')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port above 65535');

interface BrokerShape {
  type: 'memory' | 'redis';
  url: string;
  keyPrefix: string;
  redis: { sentinels: string[]; cluster: string[]; password: string };
}

/**
 * The Redis broker talks to exactly one of: one server (broker.url), a Sentinel set
 * (broker.redis.sentinels) or a Cluster (broker.redis.cluster). Cluster keys carry the channel as a
 * hash tag, so the prefix may not hold braces.
 */
function redisTargetProblems(broker: BrokerShape, ctx: z.RefinementCtx): void {
  if (broker.type !== 'redis') return;
  const set = [
    broker.url !== '' ? 'broker.url [REDIS_URL]' : null,
    broker.redis.sentinels.length > 0 ? 'broker.redis.sentinels [REDIS_SENTINELS]' : null,
    broker.redis.cluster.length > 0 ? 'broker.redis.cluster [REDIS_CLUSTER_NODES]' : null,
  ].filter((k) => k !== null);
  if (set.length > 1) {
    const at = broker.redis.cluster.length > 0 ? 'cluster' : 'sentinels';
    ctx.addIssue({
      code: 'custom',
      path: ['broker', 'redis', at],
      message: `set one of broker.url [REDIS_URL], broker.redis.sentinels [REDIS_SENTINELS] or broker.redis.cluster [REDIS_CLUSTER_NODES], not ${set.join(' and ')}`,
    });
  }
  if (broker.redis.cluster.length > 0 && /[{}]/.test(broker.keyPrefix)) {
    ctx.addIssue({
      code: 'custom',
      path: ['broker', 'keyPrefix'],
      message: 'may not hold { or } with broker.redis.cluster (channels are hash tags)',
    });
  }
  if (broker.url !== '' && broker.redis.password !== '') {
    ctx.addIssue({
      code: 'custom',
      path: ['broker', 'redis', 'password'],
      message: 'is for Sentinel and Cluster nodes; with broker.url put the password in the URL',
    });
  }
}

/** A cookie name (RFC 6265: an HTTP token). */
const COOKIE_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/** A config value checked by a function that says what is wrong, or null. */
const checked = (problem: (value: string) => string | null) =>
  z
    .string()
    .default('')
    .superRefine((value, ctx) => {
      const why = value === '' ? null : problem(value);
      if (why !== null) ctx.addIssue({ code: 'custom', message: why });
    });

const authSchema = z
  .strictObject({
    // The channel API's bearer token (GET /channels): empty, loopback clients only.
    adminToken: tokenSchema.default(''),
    publicChannels: z
      .array(z.string())
      .default([])
      .superRefine((patterns, ctx) => {
        const bad = patterns.find((p) => !isValidPattern(p));
        if (bad !== undefined) {
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(bad)}: ${PATTERN_RULE}` });
        }
      }),
    jwt: z
      .strictObject({
        secret: checked((s) => (s.length > 4096 ? 'at most 4096 characters' : secretProblem(s))),
        publicKeys: checked(pemFileProblem),
        jwksFile: checked(jwksFileProblem),
        issuer: z.string().max(1024).default(''),
        audience: z.string().max(1024).default(''),
        clockToleranceSec: int(0, 3600).default(30),
        cookie: z
          .string()
          .regex(COOKIE_NAME, "a cookie name: 1 to 64 letters, digits and !#$%&'*+-.^_`|~")
          .default('sse_token'),
      })
      .superRefine((jwt, ctx) => {
        if (jwt.secret !== '' || jwt.publicKeys !== '' || jwt.jwksFile !== '') return;
        for (const key of ['issuer', 'audience'] as const) {
          if (jwt[key] !== '') {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: 'is set but no token key is: set auth.jwt.secret, publicKeys or jwksFile',
            });
          }
        }
      })
      .prefault({}),
  })
  .prefault({});

export const serverConfigSchema = z
  .strictObject({
    host: z.string().min(1).default('0.0.0.0'),
    port: int(0, 65535).default(24856),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    heartbeatMs: int(10, 3_600_000).default(15000),
    retryMs: int(0, 3_600_000).default(2000),
    shutdownTimeoutMs: int(100, 600_000).default(5000),
    shutdownRetryJitterMs: int(0, 3_600_000).default(5000),
    trustProxy: z
      .array(z.string().min(1))
      .default([])
      .superRefine((entries, ctx) => {
        try {
          checkTrustProxy(entries);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
    cors: z
      .strictObject({
        allowedOrigins: z.array(z.string().min(1)).min(1).default(['*']),
        allowCredentials: z.boolean().default(false),
      })
      .refine((c) => !(c.allowCredentials && c.allowedOrigins.includes('*')), {
        message:
          'allowCredentials needs a list of exact origins: browsers refuse credentials with "*"',
        path: ['allowCredentials'],
      })
      .prefault({}),
    channels: z
      .strictObject({
        historySize: int(0, 1_000_000).default(1000),
        historyTtlMs: int(1000, 7 * 24 * 3_600_000).default(300_000),
        maxBodyBytes: int(16, 16 * 1024 * 1024).default(65536),
        maxBatchEvents: int(1, 100_000).default(1000),
        historyMaxBytes: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
        idempotencyTtlMs: int(1000, 7 * 24 * 3_600_000).default(600_000),
        idempotencyMaxKeys: int(1, 10_000_000).default(100_000),
        idempotencyMaxBytes: int(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxConnections: int(1, 10_000_000).default(20000),
        maxConnectionsPerIp: int(0, 10_000_000).default(0),
        maxBufferedBytes: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
        maxChannels: int(1, 10_000_000).default(10_000),
        // Open sockets of any kind; 0: maxConnections + 1024, capped below the open-file limit.
        maxSockets: int(0, 10_000_000).default(0),
        // A stream whose unsent bytes have not moved for this long is cut as a slow consumer.
        stallTimeoutMs: int(100, 3_600_000).default(30_000),
        // Channels one /sse/streams stream may carry.
        maxChannelsPerStream: int(1, 256).default(32),
        // New streams admitted per second (a token bucket holding one second's worth); beyond
        // it they get the overload answer with Retry-After: 1. 0: off.
        maxNewStreamsPerSecond: int(0, 1_000_000).default(0),
      })
      .prefault({}),
    broker: z
      .strictObject({
        type: z.enum(['memory', 'redis']).default('memory'),
        // One Redis server; empty: DEFAULT_REDIS_URL unless Sentinel or Cluster is configured.
        url: z
          .string()
          .regex(/^(rediss?:\/\/\S+)?$/, 'expected a redis:// or rediss:// URL')
          .default(''),
        keyPrefix: z.string().max(64).default('sse:'),
        redis: z
          .strictObject({
            trimGraceMs: int(0, 24 * 3_600_000).default(60_000),
            maxStreamLength: int(1, 100_000_000).default(100_000),
            // Each replica's subscriber counts (GET /channels) live this long in Redis unless
            // refreshed: a replica that dies stops counting within it.
            presenceTtlMs: int(300, 600_000).default(15_000),
            // Redis Sentinel: the sentinels to ask for the master named sentinelName.
            sentinels: z.array(hostPort).default([]),
            sentinelName: z.string().min(1).max(256).default('mymaster'),
            sentinelPassword: tokenSchema.default(''),
            // Redis Cluster: seed nodes (any of the cluster's nodes; the rest is discovered).
            cluster: z.array(hostPort).default([]),
            // The data nodes' password with Sentinel or Cluster (REDIS_URL carries its own).
            password: tokenSchema.default(''),
            // A publish is acknowledged once WAIT saw its entries on this many replicas.
            waitReplicas: int(0, 16).default(0),
            waitTimeoutMs: int(1, 10_000).default(500),
          })
          .prefault({}),
      })
      .prefault({}),
    publish: z.strictObject({ token: tokenSchema.default('') }).prefault({}),
    subscribe: z.strictObject({ token: tokenSchema.default('') }).prefault({}),
    metrics: z.strictObject({ port: int(0, 65535).default(0) }).prefault({}),
    auth: authSchema,
  })
  .superRefine((c, ctx) => {
    redisTargetProblems(c.broker, ctx);
    if (c.broker.redis.maxStreamLength < c.channels.historySize) {
      ctx.addIssue({
        code: 'custom',
        path: ['broker', 'redis', 'maxStreamLength'],
        message: `must be at least channels.historySize (${c.channels.historySize})`,
      });
    }
  })
  .transform((c) => {
    const { url, redis } = c.broker;
    if (url !== '' || redis.sentinels.length > 0 || redis.cluster.length > 0) return c;
    return { ...c, broker: { ...c.broker, url: DEFAULT_REDIS_URL } };
  });

export type ServerConfig = z.output<typeof serverConfigSchema>;

export const serverEnv: Record<string, EnvBinding> = {
  HOST: { key: 'host', kind: 'string' },
  PORT: { key: 'port', kind: 'int' },
  LOG_LEVEL: { key: 'logLevel', kind: 'string' },
  SSE_HEARTBEAT_MS: { key: 'heartbeatMs', kind: 'int' },
  SSE_RETRY_MS: { key: 'retryMs', kind: 'int' },
  SSE_SHUTDOWN_TIMEOUT_MS: { key: 'shutdownTimeoutMs', kind: 'int' },
  SSE_SHUTDOWN_RETRY_JITTER_MS: { key: 'shutdownRetryJitterMs', kind: 'int' },
  SSE_TRUST_PROXY: { key: 'trustProxy', kind: 'list' },
  SSE_CORS_ORIGINS: { key: 'cors.allowedOrigins', kind: 'list' },
  SSE_CORS_CREDENTIALS: { key: 'cors.allowCredentials', kind: 'bool' },
  SSE_HISTORY_SIZE: { key: 'channels.historySize', kind: 'int' },
  SSE_HISTORY_TTL_MS: { key: 'channels.historyTtlMs', kind: 'int' },
  SSE_MAX_BODY_BYTES: { key: 'channels.maxBodyBytes', kind: 'int' },
  SSE_MAX_EVENT_BYTES: {
    key: 'channels.maxBodyBytes',
    kind: 'int',
    replacedBy: 'SSE_MAX_BODY_BYTES',
  },
  SSE_MAX_BATCH_EVENTS: { key: 'channels.maxBatchEvents', kind: 'int' },
  SSE_MAX_CONNECTIONS: { key: 'limits.maxConnections', kind: 'int' },
  SSE_MAX_CONNECTIONS_PER_IP: { key: 'limits.maxConnectionsPerIp', kind: 'int' },
  SSE_MAX_BUFFERED_BYTES: { key: 'limits.maxBufferedBytes', kind: 'int' },
  SSE_MAX_CHANNELS: { key: 'limits.maxChannels', kind: 'int' },
  SSE_MAX_SOCKETS: { key: 'limits.maxSockets', kind: 'int' },
  SSE_STALL_TIMEOUT_MS: { key: 'limits.stallTimeoutMs', kind: 'int' },
  SSE_MAX_CHANNELS_PER_STREAM: { key: 'limits.maxChannelsPerStream', kind: 'int' },
  SSE_MAX_NEW_STREAMS_PER_SECOND: { key: 'limits.maxNewStreamsPerSecond', kind: 'int' },
  SSE_HISTORY_MAX_BYTES: { key: 'channels.historyMaxBytes', kind: 'int' },
  SSE_IDEMPOTENCY_TTL_MS: { key: 'channels.idempotencyTtlMs', kind: 'int' },
  SSE_IDEMPOTENCY_MAX_KEYS: { key: 'channels.idempotencyMaxKeys', kind: 'int' },
  SSE_IDEMPOTENCY_MAX_BYTES: { key: 'channels.idempotencyMaxBytes', kind: 'int' },
  SSE_BROKER: { key: 'broker.type', kind: 'string' },
  REDIS_URL: { key: 'broker.url', kind: 'string' },
  SSE_REDIS_KEY_PREFIX: { key: 'broker.keyPrefix', kind: 'string' },
  SSE_REDIS_TRIM_GRACE_MS: { key: 'broker.redis.trimGraceMs', kind: 'int' },
  SSE_REDIS_MAX_STREAM_LENGTH: { key: 'broker.redis.maxStreamLength', kind: 'int' },
  SSE_REDIS_PRESENCE_TTL_MS: { key: 'broker.redis.presenceTtlMs', kind: 'int' },
  REDIS_SENTINELS: { key: 'broker.redis.sentinels', kind: 'list' },
  REDIS_SENTINEL_NAME: { key: 'broker.redis.sentinelName', kind: 'string' },
  REDIS_SENTINEL_PASSWORD: { key: 'broker.redis.sentinelPassword', kind: 'string' },
  REDIS_CLUSTER_NODES: { key: 'broker.redis.cluster', kind: 'list' },
  REDIS_PASSWORD: { key: 'broker.redis.password', kind: 'string' },
  SSE_REDIS_WAIT_REPLICAS: { key: 'broker.redis.waitReplicas', kind: 'int' },
  SSE_REDIS_WAIT_TIMEOUT_MS: { key: 'broker.redis.waitTimeoutMs', kind: 'int' },
  SSE_PUBLISH_TOKEN: { key: 'publish.token', kind: 'string' },
  SSE_SUBSCRIBE_TOKEN: { key: 'subscribe.token', kind: 'string' },
  SSE_ADMIN_TOKEN: { key: 'auth.adminToken', kind: 'string' },
  METRICS_PORT: { key: 'metrics.port', kind: 'int' },
  SSE_PUBLIC_CHANNELS: { key: 'auth.publicChannels', kind: 'list' },
  SSE_JWT_SECRET: { key: 'auth.jwt.secret', kind: 'string' },
  SSE_JWT_PUBLIC_KEY_FILE: { key: 'auth.jwt.publicKeys', kind: 'string' },
  SSE_JWKS_FILE: { key: 'auth.jwt.jwksFile', kind: 'string' },
  SSE_JWT_ISSUER: { key: 'auth.jwt.issuer', kind: 'string' },
  SSE_JWT_AUDIENCE: { key: 'auth.jwt.audience', kind: 'string' },
  SSE_JWT_CLOCK_TOLERANCE_SEC: { key: 'auth.jwt.clockToleranceSec', kind: 'int' },
  SSE_JWT_COOKIE: { key: 'auth.jwt.cookie', kind: 'string' },
};

/** Keys whose values never appear in a config error (they are secrets). */
export const sensitiveServerKeys: readonly string[] = [
  'auth.jwt.secret',
  'auth.adminToken',
  'publish.token',
  'subscribe.token',
  'broker.redis.sentinelPassword',
  'broker.redis.password',
];

export const defaultConfigFile = fileURLToPath(
  new URL('../../../config/server.yaml', import.meta.url),
);

/** Keys renamed since they were documented; the old names still work, with a warning. */
export const renamedServerKeys: Record<string, string> = {
  // It bounds the whole publish request body (a batch of events), not one event.
  'channels.maxEventBytes': 'channels.maxBodyBytes',
};

/**
 * Reads the server config: SSE_CONFIG (or the default file), then the environment, then
 * overrides. Deprecated names in use are reported in `warnings` (main.ts logs them).
 */
export function loadServerConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Record<string, unknown> = {},
  warnings: string[] = [],
): ServerConfig {
  const file = env.SSE_CONFIG || defaultConfigFile;
  return loadConfig({
    file,
    required: Boolean(env.SSE_CONFIG),
    schema: serverConfigSchema,
    env,
    envMap: serverEnv,
    overrides,
    renamedKeys: renamedServerKeys,
    warnings,
    sensitiveKeys: sensitiveServerKeys,
  });
}

/** A complete config from defaults plus the given partial tree (for tests and embedding). */
export function buildServerConfig(partial: Record<string, unknown> = {}): ServerConfig {
  return serverConfigSchema.parse(partial);
}
