// ioredis connections for the Redis broker: fail fast while Redis is unreachable (no offline
// queue, no command retried across a reconnect), reconnect with jittered exponential backoff.
import { Redis } from 'ioredis';

/** Reconnect backoff: 100 ms doubling to 5 s, with jitter so replicas do not retry in step. */
export function reconnectDelay(times: number): number {
  const base = Math.min(5000, 100 * 2 ** Math.min(times, 6));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function redisConnection(
  url: string,
  name: string,
  extra: { commandTimeout?: number } = {},
): Redis {
  return new Redis(url, {
    lazyConnect: true,
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: 2000,
    keepAlive: 10_000,
    retryStrategy: reconnectDelay,
    ...extra,
  });
}
