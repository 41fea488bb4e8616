// ioredis connections for the Redis broker: fail fast while Redis is unreachable (no offline
// queue, no command retried across a reconnect), reconnect with jittered exponential backoff.
// Three ways to reach Redis (config: exactly one of them):
//   single    one server (broker.url)
//   sentinel  the master a Redis Sentinel set names (broker.redis.sentinels): ioredis asks the
//             sentinels, checks the role it reached (ready check), drops the connection when a
//             sentinel announces +switch-master (failoverDetector) or a write meets READONLY
//             (a demoted master), and asks again on every reconnect
//   cluster   Redis Cluster (broker.redis.cluster): ioredis's Cluster client routes each command by
//             its key's slot and follows MOVED/ASK; every connection to a node fails fast as above
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ServerConfig } from '../config.ts';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type RedisTarget =
  | { readonly kind: 'single'; readonly url: string }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly HostPort[];
      readonly name: string;
      readonly sentinelPassword: string;
      readonly password: string;
    }
  | { readonly kind: 'cluster'; readonly nodes: readonly HostPort[]; readonly password: string };

/** `host:port`, `[v6]:port` -> {host, port}. */
export function parseHostPort(text: string): HostPort {
  const at = text.lastIndexOf(':');
  const host = text.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(text.slice(at + 1)) };
}

/** Where the config says Redis is. */
export function redisTarget(broker: ServerConfig['broker']): RedisTarget {
  const r = broker.redis;
  if (r.cluster.length > 0) {
    return { kind: 'cluster', nodes: r.cluster.map(parseHostPort), password: r.password };
  }
  if (r.sentinels.length > 0) {
    return {
      kind: 'sentinel',
      sentinels: r.sentinels.map(parseHostPort),
      name: r.sentinelName,
      sentinelPassword: r.sentinelPassword,
      password: r.password,
    };
  }
  return { kind: 'single', url: broker.url };
}

/** Reconnect backoff: 100 ms doubling to `cap`, with jitter so replicas do not retry in step. */
export function reconnectDelay(times: number, cap = 5000): number {
  const base = Math.min(cap, 100 * 2 ** Math.min(times, 6));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * With Sentinel or Cluster a lost connection usually means a failover that completes within
 * seconds: retry at most every second (a single server: up to 5 s).
 */
function backoffCap(target: RedisTarget): number {
  return target.kind === 'single' ? 5000 : 1000;
}

export function targetDelay(target: RedisTarget): (times: number) => number {
  const cap = backoffCap(target);
  return (times) => reconnectDelay(times, cap);
}

/** The options every connection shares, whatever the target. */
function failFast(name: string, extra: { commandTimeout?: number }): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: 2000,
    keepAlive: 10_000,
    ...extra,
  };
}

/** A write that met a replica: the connection reached a demoted master; reconnect (ask again). */
function reconnectOnReadonly(err: Error): boolean {
  return /^READONLY/.test(err.message);
}

/** One connection to the master (single or Sentinel). */
export function redisConnection(
  target: Exclude<RedisTarget, { kind: 'cluster' }>,
  name: string,
  extra: { commandTimeout?: number } = {},
): Redis {
  const options: RedisOptions = {
    ...failFast(name, extra),
    retryStrategy: targetDelay(target),
  };
  if (target.kind === 'single') return new Redis(target.url, options);
  return new Redis({
    ...options,
    sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: target.name,
    role: 'master',
    ...(target.sentinelPassword !== '' ? { sentinelPassword: target.sentinelPassword } : {}),
    ...(target.password !== '' ? { password: target.password } : {}),
    failoverDetector: true,
    // Sentinels are asked again on every reconnect; all of them unreachable: retry every second.
    sentinelRetryStrategy: (times: number) => reconnectDelay(times, 1000),
    sentinelCommandTimeout: 1000,
    reconnectOnError: reconnectOnReadonly,
  });
}

/**
 * A Cluster client: commands routed by slot, MOVED/ASK followed (at most 16 redirections),
 * TRYAGAIN and CLUSTERDOWN retried after 100 ms; the slot map refreshed every 2 s so that a
 * failover or a resharding is seen even on a quiet replica. Node connections fail fast.
 */
export function clusterConnection(
  target: Extract<RedisTarget, { kind: 'cluster' }>,
  name: string,
  extra: { commandTimeout?: number } = {},
): Cluster {
  const { enableOfflineQueue: _queue, ...node } = failFast(name, extra);
  return new Cluster(
    target.nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: targetDelay(target),
      slotsRefreshInterval: 2000,
      slotsRefreshTimeout: 1000,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      redisOptions: {
        ...node,
        ...(target.password !== '' ? { password: target.password } : {}),
      },
    },
  );
}
