// ioredis connections for the Redis broker: fail fast while Redis is unreachable (no offline
// queue, no command retried across a reconnect), reconnect with jittered exponential backoff.
// Three ways to reach Redis (config: exactly one of them):
//   single    one server (broker.url)
//   sentinel  the master a Redis Sentinel set names (broker.redis.sentinels): ioredis asks the
//             sentinels, checks the role it reached (ready check), drops the connection when a
//             sentinel announces +switch-master (failoverDetector) or a write meets READONLY
//             (a demoted master), and asks again on every reconnect. ioredis asks one sentinel,
//             and right after a failover one that has not heard of it yet names the old master,
//             which still takes writes until the sentinels demote it (seconds later): so each
//             connection is confirmed only once every sentinel that answers names the master it
//             reached, and dropped (to ask again) when a majority names another (SentinelCheck)
//   cluster   Redis Cluster (broker.redis.cluster): ioredis's Cluster client routes each command by
//             its key's slot and follows MOVED/ASK; every connection to a node fails fast as above
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
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

/** An IPv4 address as it is, also when the socket shows it IPv4-mapped (::ffff:10.0.0.2). */
function plainIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** SENTINEL GET-MASTER-ADDR-BY-NAME of one sentinel as `ip:port`; null when it cannot say. */
async function namedBy(
  sentinel: HostPort,
  target: Extract<RedisTarget, { kind: 'sentinel' }>,
): Promise<string | null> {
  const conn = new Redis({
    host: sentinel.host,
    port: sentinel.port,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 1000,
    retryStrategy: () => null,
    ...(target.sentinelPassword !== '' ? { password: target.sentinelPassword } : {}),
  });
  conn.on('error', () => {});
  try {
    await conn.connect();
    const addr = (await conn.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', target.name)) as
      | string[]
      | null;
    if (addr === null) return null;
    // A sentinel with announce-hostnames answers a name: compared by the address it resolves to.
    const host = isIP(addr[0]!) ? addr[0]! : (await lookup(addr[0]!)).address;
    return `${plainIp(host)}:${addr[1]}`;
  } catch {
    return null;
  } finally {
    conn.disconnect();
  }
}

/** How often an unconfirmed Sentinel connection asks the sentinels again. */
const RECHECK_MS = 250;

/** A majority that agrees this long is enough, whatever a sentinel left behind keeps saying. */
const MAJORITY_AFTER_MS = 5000;

/**
 * Whether a Sentinel connection reached the master the sentinels agree on. After each `ready` it
 * asks every sentinel: confirmed once every one that answers names the address it is connected to
 * (or a majority has for MAJORITY_AFTER_MS: a sentinel cut off from the others keeps its old view);
 * dropped (ioredis reconnects and asks again) once a majority of them names another; otherwise
 * asked again every 250 ms (sentinels agree within their 2 s hello period).
 */
class SentinelCheck {
  confirmed = false;
  /** Closed on purpose (endConnection): not revived. */
  ended = false;
  private readonly conn: Redis;
  private readonly target: Extract<RedisTarget, { kind: 'sentinel' }>;
  private readonly listeners: (() => void)[] = [];
  private round = 0;
  private revivals = 0;

  constructor(conn: Redis, target: Extract<RedisTarget, { kind: 'sentinel' }>) {
    this.conn = conn;
    this.target = target;
    conn.on('ready', () => {
      this.revivals = 0;
      void this.check(++this.round, Date.now());
    });
    conn.on('close', () => {
      this.round++;
      this.set(false);
    });
    // ioredis gives a connection up for good ('end') when its failover detector hears
    // +switch-master while the connection is asking the sentinels (a reconnect after the master
    // died): start it again, unless it was closed on purpose.
    conn.on('end', () => {
      if (this.ended) return;
      const timer = setTimeout(
        () => {
          if (!this.ended && conn.status === 'end') conn.connect().catch(() => {});
        },
        reconnectDelay(++this.revivals, 1000),
      );
      timer.unref();
    });
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private set(confirmed: boolean): void {
    if (this.confirmed === confirmed) return;
    this.confirmed = confirmed;
    for (const l of this.listeners) l();
  }

  private async check(round: number, since: number): Promise<void> {
    const s = this.conn.stream;
    const at = `${plainIp(s?.remoteAddress ?? '')}:${s?.remotePort}`;
    const named = await Promise.all(this.target.sentinels.map((x) => namedBy(x, this.target)));
    if (round !== this.round || this.conn.status !== 'ready') return;
    const answers = named.filter((n) => n !== null);
    const here = answers.filter((n) => n === at).length;
    const others = answers.length - here;
    const majority = this.target.sentinels.length / 2;
    if ((here > 0 && others === 0) || (here > majority && Date.now() - since > MAJORITY_AFTER_MS)) {
      this.set(true);
      return;
    }
    if (others > majority) {
      this.conn.disconnect(true); // a majority names another master: reconnect, ask again
      return;
    }
    setTimeout(() => void this.check(round, since), RECHECK_MS).unref();
  }
}

const checks = new WeakMap<Redis, SentinelCheck>();

/**
 * True when the connection may be used as the master: always for one server; with Sentinel once
 * the sentinels agree it is the master (SentinelCheck).
 */
export function masterConfirmed(conn: Redis): boolean {
  return checks.get(conn)?.confirmed ?? true;
}

/** Closes a connection for good (a Sentinel connection is otherwise revived after an end). */
export function endConnection(conn: Redis | Cluster): void {
  if (conn instanceof Redis) {
    const check = checks.get(conn);
    if (check !== undefined) check.ended = true;
  }
  conn.disconnect();
}

/** Calls `listener` whenever masterConfirmed(conn) changes. */
export function onMasterConfirmed(conn: Redis, listener: () => void): void {
  checks.get(conn)?.onChange(listener);
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
  const conn = new Redis({
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
  checks.set(conn, new SentinelCheck(conn, target));
  return conn;
}

/**
 * A Cluster client: commands routed by slot, MOVED/ASK followed, TRYAGAIN, CLUSTERDOWN and a
 * closed node connection retried after 100 ms (at most 30 redirections in all); the slot map
 * refreshed every 2 s so that a failover or a resharding is seen even on a quiet replica. Node
 * connections fail fast.
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
      // A slot being resharded answers a command whose keys are split between the two masters
      // with TRYAGAIN until it is done: retried for up to 3 s (then 503, not published).
      maxRedirections: 30,
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
