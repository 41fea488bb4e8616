// The channel directory that goes with the broker: Redis (every replica) or this process.
import type { Broker } from '../broker/broker.ts';
import { MemoryBroker } from '../broker/memory-broker.ts';
import { redisTarget } from '../broker/redis-connection.ts';
import type { ServerConfig } from '../config.ts';
import type { Hub } from '../sse/hub.ts';
import { type ChannelDirectory, MemoryChannelDirectory } from './directory.ts';
import { RedisChannelDirectory } from './redis-directory.ts';

export function createChannelDirectory(
  config: ServerConfig,
  broker: Broker,
  hub: Hub,
): ChannelDirectory {
  if (config.broker.type === 'redis' && broker.type === 'redis') {
    return new RedisChannelDirectory({
      target: redisTarget(config.broker),
      keyPrefix: config.broker.keyPrefix,
      historySize: config.channels.historySize,
      presenceTtlMs: config.broker.redis.presenceTtlMs,
      localSubscribers: () => hub.localSubscribers(),
      localSubscriberCount: (name) => hub.subscriberCount(name),
    });
  }
  // A broker that keeps no records here (one a test injected) shows subscribers only.
  const memory = broker instanceof MemoryBroker ? broker : null;
  return new MemoryChannelDirectory({
    records: () => memory?.channelRecords() ?? [],
    record: (name) => memory?.channelRecord(name) ?? null,
    subscribers: () => hub.localSubscribers(),
    subscriberCount: (name) => hub.subscriberCount(name),
  });
}
