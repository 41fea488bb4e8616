// The broker named by the config: memory (default, one process) or Redis Streams (replicas; one
// server, a Sentinel set or a Cluster).
import type { ServerConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { Broker } from './broker.ts';
import { MemoryBroker } from './memory-broker.ts';
import { RedisBroker } from './redis-broker.ts';
import { redisTarget } from './redis-connection.ts';
import type { RedisTopology } from './redis-topology.ts';

/** Longest a publish waits for its subscribers (the hub's publishWaitMs). */
export const PUBLISH_WAIT_MS = 5000;
/**
 * How long an idempotency record without an answer counts as in flight: the publish's wait plus a
 * margin. A request that died after storing its events (a replica crash, a timeout that answered
 * 503) leaves such a record: after the lease, retries get its ids.
 */
const IDEMPOTENCY_LEASE_MS = PUBLISH_WAIT_MS + 2000;

/** The Redis master(s) in one log line at each change; a master switch is counted. */
function topologyReporter(metrics: ServerMetrics, logger: Logger | undefined) {
  return (t: RedisTopology) => {
    if (t.failovers > 0) metrics.brokerFailovers.inc(t.failovers);
    logger?.info(
      { event: 'redis_topology', mode: t.mode, masters: t.masters, failovers: t.failovers },
      t.failovers > 0 ? 'redis master switched' : 'redis topology',
    );
  };
}

export function createBroker(
  config: ServerConfig,
  metrics: ServerMetrics,
  logger?: Logger,
): Broker {
  const { historySize, historyTtlMs, historyMaxBytes } = config.channels;
  const { maxChannels } = config.limits;
  const ttlMs = config.channels.idempotencyTtlMs;
  if (config.broker.type === 'redis') {
    return new RedisBroker({
      target: redisTarget(config.broker),
      keyPrefix: config.broker.keyPrefix,
      historySize,
      historyTtlMs,
      trimGraceMs: config.broker.redis.trimGraceMs,
      maxStreamLength: config.broker.redis.maxStreamLength,
      maxChannels,
      idempotency: { ttlMs, leaseMs: IDEMPOTENCY_LEASE_MS },
      waitReplicas: config.broker.redis.waitReplicas,
      waitTimeoutMs: config.broker.redis.waitTimeoutMs,
      onError: (op) => metrics.brokerErrors.labels({ op }).inc(),
      onTopology: topologyReporter(metrics, logger),
    });
  }
  return new MemoryBroker({
    historySize,
    historyMaxBytes,
    historyTtlMs,
    maxChannels,
    idempotency: {
      ttlMs,
      maxKeys: config.channels.idempotencyMaxKeys,
      maxBytes: config.channels.idempotencyMaxBytes,
      leaseMs: IDEMPOTENCY_LEASE_MS,
    },
  });
}
