// The broker named by the config: memory (default, one process) or Redis Streams (replicas).
import type { ServerConfig } from '../config.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { Broker } from './broker.ts';
import { MemoryBroker } from './memory-broker.ts';
import { RedisBroker } from './redis-broker.ts';

/** Longest a publish waits for its subscribers (the hub's publishWaitMs). */
export const PUBLISH_WAIT_MS = 5000;
/**
 * How long an idempotency record without an answer counts as in flight: the publish's wait plus a
 * margin. A request that died after storing its events (a replica crash, a timeout that answered
 * 503) leaves such a record: after the lease, retries get its ids.
 */
const IDEMPOTENCY_LEASE_MS = PUBLISH_WAIT_MS + 2000;

export function createBroker(config: ServerConfig, metrics: ServerMetrics): Broker {
  const { historySize, historyTtlMs, historyMaxBytes } = config.channels;
  const { maxChannels } = config.limits;
  const ttlMs = config.channels.idempotencyTtlMs;
  if (config.broker.type === 'redis') {
    return new RedisBroker({
      url: config.broker.url,
      keyPrefix: config.broker.keyPrefix,
      historySize,
      historyTtlMs,
      trimGraceMs: config.broker.redis.trimGraceMs,
      maxStreamLength: config.broker.redis.maxStreamLength,
      maxChannels,
      idempotency: { ttlMs, leaseMs: IDEMPOTENCY_LEASE_MS },
      onError: (op) => metrics.brokerErrors.labels({ op }).inc(),
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
