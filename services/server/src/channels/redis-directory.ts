// The Redis broker's channel directory, over every replica sharing one Redis:
//   history      the broker's registry `<keyPrefix>#channels` (a sorted set of the channels with
//                history, scored by when their stream key expires) and each stream
//                `<keyPrefix><channel>` (length, last-generated-id), read by one script per page
//   subscribers  presence: each replica keeps its counts in a hash `<keyPrefix>#presence:<replica>`
//                and itself in the sorted set `<keyPrefix>#replicas`, scored by when that hash
//                expires; a tick rewrites the hash when the counts changed and refreshes its expiry
//                (presenceTtlMs) otherwise. A replica that dies stops counting within the TTL; one
//                that shuts down removes its hash at once. This replica's own counts are read live
//                from its hub, never from Redis.
// Presence keys hold a `#`, which no channel name does: they never collide with a stream key.
// With Redis Cluster the registry and the presence keys share the hash tag {#} (redis-keys.ts), so
// the scripts below still touch one slot; a page's stream facts are read one stream at a time.
// Scores and expiry use Redis's clock (TIME in the scripts), so replicas' clocks may differ.
// The directory has its own connection (fail fast, like the broker's; with Sentinel it follows the
// master): while Redis is unreachable the API answers 503 and the tick tries again.
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { BrokerUnavailableError } from '../broker/broker.ts';
import { parseEventId } from '../broker/event-id.ts';
import {
  clusterConnection,
  endConnection,
  type RedisTarget,
  redisConnection,
} from '../broker/redis-connection.ts';
import { RedisKeys } from '../broker/redis-keys.ts';
import {
  type ChannelDirectory,
  type ChannelFacts,
  type ChannelPage,
  type ChannelQuery,
  candidates,
  channelFacts,
  collectPage,
} from './directory.ts';

export interface RedisDirectoryOptions {
  target: RedisTarget;
  keyPrefix: string;
  /** A replay gives at most this many events (the broker's window). */
  historySize: number;
  presenceTtlMs: number;
  /** This process's channels with subscribers (the hub). */
  localSubscribers(): Iterable<[string, number]>;
  localSubscriberCount(name: string): number;
}

/** Rewrites (`write`) or refreshes (`refresh`) this replica's presence; 1 while it holds counts. */
const PRESENCE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
if ARGV[3] == 'write' then
  redis.call('DEL', KEYS[1])
  for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local held = redis.call('EXISTS', KEYS[1]) == 1
if held then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(top[2]) - now)) end
if held then return 1 end
return 0
`;

/**
 * The other live replicas' counts (a flat list: channel, count, ...) and the channels with history,
 * for one channel (ARGV[3]) or all ('').
 */
const READ_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local counts = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if id ~= ARGV[2] then
    local key = ARGV[1] .. id
    if ARGV[3] == '' then
      local all = redis.call('HGETALL', key)
      for i = 1, #all do counts[#counts + 1] = all[i] end
    else
      local n = redis.call('HGET', key, ARGV[3])
      if n then
        counts[#counts + 1] = ARGV[3]
        counts[#counts + 1] = n
      end
    end
  end
end
local history = {}
if ARGV[3] == '' then history = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf') end
return {counts, history}
`;

/** For each stream key: {length, last-generated-id}; {0, ''} when it is not a stream. */
const FACTS_LUA = `
local out = {}
for i, key in ipairs(KEYS) do
  local len, last = 0, ''
  if redis.call('TYPE', key)['ok'] == 'stream' then
    local info = redis.call('XINFO', 'STREAM', key)
    for j = 1, #info, 2 do
      if info[j] == 'length' then len = info[j + 1]
      elseif info[j] == 'last-generated-id' then last = info[j + 1] end
    end
  end
  out[i] = {len, last}
end
return out
`;

type Caller = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** Longest the shutdown waits to remove this replica's presence. */
const CLOSE_WAIT_MS = 500;

function sameCounts(a: ReadonlyMap<string, number> | null, b: ReadonlyMap<string, number>) {
  if (a === null || a.size !== b.size) return false;
  for (const [k, v] of b) if (a.get(k) !== v) return false;
  return true;
}

export class RedisChannelDirectory implements ChannelDirectory {
  private readonly options: RedisDirectoryOptions;
  private readonly conn: Redis | Cluster;
  private readonly keys: RedisKeys;
  /** This replica's id in the presence keys. */
  readonly replica = randomUUID();
  private readonly presence: Caller;
  private readonly read: Caller;
  private readonly facts: Caller;
  private timer: NodeJS.Timeout | null = null;
  /** The counts the presence hash holds, as last written; null: write them at the next tick. */
  private written: Map<string, number> | null = null;
  private refreshedAt = 0;
  private ticking: Promise<void> | null = null;
  private closed = false;

  constructor(options: RedisDirectoryOptions) {
    this.options = options;
    const { target } = options;
    this.keys = new RedisKeys(options.keyPrefix, target.kind === 'cluster');
    this.conn =
      target.kind === 'cluster'
        ? clusterConnection(target, 'http-sse:channels', { commandTimeout: 2000 })
        : redisConnection(target, 'http-sse:channels', { commandTimeout: 2000 });
    this.conn.on('error', () => {}); // reported as 503 answers; the tick retries
    if (target.kind === 'cluster') this.conn.on('node error', () => {});
    this.conn.on('ready', () => {
      this.written = null; // Redis may have lost it (a restart): write it again
    });
    const define = (name: string, lua: string): Caller => {
      this.conn.defineCommand(name, { lua });
      return (this.conn as unknown as Record<string, Caller>)[name]!.bind(this.conn);
    };
    this.presence = define('httpSsePresence', PRESENCE_LUA);
    this.read = define('httpSseChannels', READ_LUA);
    this.facts = define('httpSseChannelFacts', FACTS_LUA);
  }

  private presenceKey(replica: string): string {
    return this.keys.presence(replica);
  }

  private get replicasKey(): string {
    return this.keys.replicas;
  }

  private get registryKey(): string {
    return this.keys.registry;
  }

  /** How often the tick runs: about every second, more often for a short TTL. */
  private get tickMs(): number {
    return Math.max(100, Math.min(1000, Math.floor(this.options.presenceTtlMs / 3)));
  }

  async start(): Promise<void> {
    await this.conn.connect().catch(() => {}); // not fatal: ioredis keeps retrying
    this.timer ??= setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
    void this.tick(); // not awaited: a Redis that hangs must not hold up listening
  }

  /** Writes this replica's counts when they changed, else refreshes their expiry when due. */
  tick(): Promise<void> {
    if (this.ticking !== null || this.closed || this.conn.status !== 'ready') {
      return this.ticking ?? Promise.resolve();
    }
    this.ticking = this.writePresence().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async writePresence(): Promise<void> {
    const counts = new Map(this.options.localSubscribers());
    const ttl = this.options.presenceTtlMs;
    const changed = !sameCounts(this.written, counts);
    if (!changed && Date.now() - this.refreshedAt < ttl / 3) return;
    const args: (string | number)[] = [ttl, this.replica, changed ? 'write' : 'refresh'];
    if (changed) for (const [name, n] of counts) args.push(name, n);
    try {
      const held = await this.presence(
        2,
        this.presenceKey(this.replica),
        this.replicasKey,
        ...args,
      );
      this.refreshedAt = Date.now();
      // A hash that expired meanwhile (Redis paused, restarted): write it again next tick.
      this.written = !changed && held === 0 && counts.size > 0 ? null : counts;
    } catch {
      this.written = null;
    }
  }

  private ensureUp(): void {
    if (this.conn.status !== 'ready') throw new BrokerUnavailableError('redis is unreachable');
  }

  private async call<T>(what: Promise<unknown>): Promise<T> {
    try {
      return (await what) as T;
    } catch (err) {
      throw new BrokerUnavailableError(`redis channel read failed: ${(err as Error).message}`);
    }
  }

  /** Other replicas' counts (summed per channel) and the channels with history (all: '' ). */
  private async others(channel: string): Promise<[Map<string, number>, string[]]> {
    this.ensureUp();
    const [flat, history] = await this.call<[string[], string[]]>(
      this.read(2, this.replicasKey, this.registryKey, this.presenceKey(''), this.replica, channel),
    );
    const counts = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const n = Number(flat[i + 1]);
      if (Number.isSafeInteger(n) && n > 0) counts.set(flat[i]!, (counts.get(flat[i]!) ?? 0) + n);
    }
    return [counts, history];
  }

  /** The facts of each named channel (null for one that does not exist). */
  private async factsOf(names: string[], counts: Map<string, number>) {
    if (names.length === 0) return [];
    const keys = names.map((n) => this.keys.stream(n));
    // One script for the page; with Cluster one per stream (each in its own slot).
    const replies = this.keys.cluster
      ? await Promise.all(
          keys.map(async (k) => (await this.call<[number, string][]>(this.facts(1, k)))[0]!),
        )
      : await this.call<[number, string][]>(this.facts(keys.length, ...keys));
    return names.map((name, i) => {
      const [length, last] = replies[i] ?? [0, ''];
      const held = Math.min(Number(length) || 0, this.options.historySize);
      const subscribers = (counts.get(name) ?? 0) + this.options.localSubscriberCount(name);
      return channelFacts(name, subscribers, held, last ? parseEventId(last) : null);
    });
  }

  async list(query: ChannelQuery): Promise<ChannelPage> {
    const [counts, history] = await this.others('');
    const names = new Set<string>(history);
    for (const name of counts.keys()) names.add(name);
    for (const [name] of this.options.localSubscribers()) names.add(name);
    const sorted = candidates(names, query);
    return collectPage(sorted, query.limit, (batch) => this.factsOf(batch, counts));
  }

  async get(name: string): Promise<ChannelFacts | null> {
    const [counts] = await this.others(name);
    const [facts] = await this.factsOf([name], counts);
    return facts ?? null;
  }

  async count(): Promise<number> {
    const [counts, history] = await this.others('');
    const names = new Set<string>(history);
    for (const name of counts.keys()) names.add(name);
    for (const [name] of this.options.localSubscribers()) names.add(name);
    return names.size;
  }

  /**
   * Stops the tick and removes this replica's presence (its subscribers stop counting at once).
   * Bounded: a Redis that does not answer within CLOSE_WAIT_MS leaves the presence to its TTL.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const goodbye = (async () => {
      await this.ticking;
      if (this.conn.status !== 'ready') return;
      await this.conn
        .multi()
        .del(this.presenceKey(this.replica))
        .zrem(this.replicasKey, this.replica)
        .exec();
    })().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => {
      timer = setTimeout(r, CLOSE_WAIT_MS);
    });
    await Promise.race([goodbye, late]);
    clearTimeout(timer);
    endConnection(this.conn);
  }
}
