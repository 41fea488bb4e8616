// The broker named by the config: memory (default, one process) or Redis Streams (replicas).
import type { ServerConfig } from '../config.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { Broker } from './broker.ts';
import { MemoryBroker } from './memory-broker.ts';
import { RedisBroker } from './redis-broker.ts';

export function createBroker(config: ServerConfig, metrics: ServerMetrics): Broker {
  const { historySize, historyTtlMs, historyMaxBytes } = config.channels;
  const { maxChannels } = config.limits;
  if (config.broker.type === 'redis') {
    return new RedisBroker({
      url: config.broker.url,
      keyPrefix: config.broker.keyPrefix,
      historySize,
      historyTtlMs,
      maxChannels,
      onError: (op) => metrics.brokerErrors.labels({ op }).inc(),
    });
  }
  return new MemoryBroker({ historySize, historyMaxBytes, historyTtlMs, maxChannels });
}
