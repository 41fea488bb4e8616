// The servers `npm run bench:fanout` measures, each started on a random port when its turn comes
// and stopped after it: ours with the memory broker, the Redis broker on one redis-server, on a
// Sentinel set (one master, one replica, three sentinels; waitReplicas 0 and 1) or on a Cluster
// (three masters), the receiver's ceiling (the direct-send reference coalescing everything), the
// pre-framed node:http reference, the direct-send reference (one write(2) per subscriber per event,
// like C epoll), naive express and better-sse; or, with --url, one server that is already running.
import { type SpawnedServer, spawnServer } from '../../services/shared/spawn-server.ts';
import { startRedisCluster, startSentinelSet } from './redis-ha.ts';
import { type RedisProcess, startRedis } from './redis-server.ts';

/**
 * Which of our servers: memory, redis (one redis-server), both (those two), sentinel (on Redis
 * Sentinel, waitReplicas 0 and 1), cluster (on Redis Cluster), ha (redis, sentinel and cluster).
 */
export const BROKERS = ['memory', 'redis', 'both', 'sentinel', 'cluster', 'ha'] as const;
export type Broker = (typeof BROKERS)[number];

/** The publish token of the servers the bench starts. */
export const BENCH_TOKEN = 'bench-token';

export interface RunningTarget {
  base: string;
  stop: () => Promise<void>;
}

export interface TargetSpec {
  name: string;
  /** Runs the byte-exact /sse/test stream check (better-sse frames events its own way). */
  stream: boolean;
  /** Serves several-channel streams, /sse/streams (--channels-per-stream > 1): ours only. */
  multiChannel: boolean;
  start: () => Promise<RunningTarget>;
}

/** The bench's name for the receiver's ceiling (bench.ts compares every server with it). */
export const CEILING = 'receiver-ceiling';

async function serverTarget(script: string, env: Record<string, string> = {}) {
  const server: SpawnedServer = await spawnServer(script, {
    // LOG_LEVEL stays info: the listening line is what spawnServer waits for.
    env: { SSE_PUBLISH_TOKEN: BENCH_TOKEN, ...env },
    stderr: 'inherit',
    timeoutMs: 30_000,
  });
  return { base: server.base, stop: () => server.stop() };
}

/** Our server with the Redis broker: its own redis-server, stopped with it. */
async function redisTarget() {
  const redis: RedisProcess = await startRedis();
  try {
    const server = await serverTarget('services/server/src/main.ts', {
      SSE_BROKER: 'redis',
      REDIS_URL: redis.url,
    });
    return {
      base: server.base,
      stop: async () => {
        await server.stop();
        await redis.stop();
      },
    };
  } catch (err) {
    await redis.stop();
    throw err;
  }
}

/** Our server on a fresh Sentinel set (waitReplicas `wait`), stopped with it. */
async function sentinelTarget(wait: number) {
  const set = await startSentinelSet();
  try {
    const server = await serverTarget(
      'services/server/src/main.ts',
      set.env({ SSE_REDIS_WAIT_REPLICAS: String(wait) }),
    );
    return {
      base: server.base,
      stop: async () => {
        await server.stop();
        await set.stop();
      },
    };
  } catch (err) {
    await set.stop();
    throw err;
  }
}

/** Our server on a fresh three-master Redis Cluster, stopped with it. */
async function clusterTarget() {
  const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  try {
    const server = await serverTarget('services/server/src/main.ts', cluster.env());
    return {
      base: server.base,
      stop: async () => {
        await server.stop();
        await cluster.stop();
      },
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** Every one of our servers, with the brokers (--broker values) that include it. */
const OURS: (TargetSpec & { brokers: readonly Broker[] })[] = [
  {
    name: 'ours-memory',
    stream: true,
    multiChannel: true,
    brokers: ['memory', 'both'],
    start: () => serverTarget('services/server/src/main.ts', { SSE_BROKER: 'memory' }),
  },
  {
    name: 'ours-redis',
    stream: false,
    multiChannel: true,
    brokers: ['redis', 'both', 'ha'],
    start: redisTarget,
  },
  {
    name: 'ours-sentinel',
    stream: false,
    multiChannel: true,
    brokers: ['sentinel', 'ha'],
    start: () => sentinelTarget(0),
  },
  {
    name: 'ours-sentinel-wait1',
    stream: false,
    multiChannel: true,
    brokers: ['sentinel', 'ha'],
    start: () => sentinelTarget(1),
  },
  {
    name: 'ours-cluster',
    stream: false,
    multiChannel: true,
    brokers: ['cluster', 'ha'],
    start: clusterTarget,
  },
];

/** The --broker values that measure the server named `name` (empty for the references). */
export function brokersOf(name: string): readonly Broker[] {
  return OURS.find((o) => o.name === name)?.brokers ?? [];
}

/** Ours with the broker(s) asked for, then the receiver's ceiling, then the four references. */
export function benchTargets(broker: Broker): TargetSpec[] {
  const list: TargetSpec[] = OURS.filter((o) => o.brokers.includes(broker)).map(
    ({ name, stream, multiChannel, start }) => ({ name, stream, multiChannel, start }),
  );
  list.push(
    {
      name: CEILING,
      stream: false,
      multiChannel: false,
      start: () =>
        serverTarget('loadtest/reference/direct-send-server.ts', { REFERENCE_MODE: 'coalesce' }),
    },
    {
      name: 'preframed',
      stream: true,
      multiChannel: false,
      start: () => serverTarget('loadtest/reference/preframed-server.ts'),
    },
    {
      name: 'direct-send',
      stream: false,
      multiChannel: false,
      start: () => serverTarget('loadtest/reference/direct-send-server.ts'),
    },
    {
      name: 'express-naive',
      stream: true,
      multiChannel: false,
      start: () => serverTarget('loadtest/reference/express-naive-server.ts'),
    },
    {
      name: 'better-sse',
      stream: false,
      multiChannel: false,
      start: () => serverTarget('loadtest/reference/better-sse-server.ts'),
    },
  );
  return list;
}

/**
 * --url: the server already running there, named `target`; nothing to start or stop. `url` comes
 * without trailing slashes (main.ts strips them when it parses the flags).
 */
export function urlTarget(url: string): TargetSpec {
  return {
    name: 'target',
    stream: true,
    // Whatever it is: with --channels-per-stream > 1 its subscribers fail to open if it has none.
    multiChannel: true,
    start: async () => ({
      base: url,
      stop: async () => {},
    }),
  };
}
