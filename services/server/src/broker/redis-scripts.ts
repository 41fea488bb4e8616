// The Redis broker's publish as one Lua script, so that every check and write of a publish is one
// atomic step on the Redis server (no other client sees half of it, and a retry with the same
// Idempotency-Key can never store the events twice, whichever replica it reaches):
//   1. the stream key must be a stream (or absent): a foreign key of another type fails this
//      channel alone;
//   2. an idempotency key already used on the channel: nothing is written, the record is returned
//      (when the publish waits for replicas, the record's expiry is rewritten as it is: a write, so
//      that the WAIT after it covers the record and the entries it names);
//   3. limits.maxChannels across every replica: a sorted set of the channels that hold history,
//      scored by when their stream key expires (Redis Cluster: a separate step before the script,
//      REGISTER_LUA, since the registry cannot share every channel's slot);
//   4. XADD each event with its sequence number in the channel (field n = entries-added), so that a
//      reader can tell a gap (entries trimmed before it read them) from a continuation;
//   5. trimming that never outruns a reader: entries beyond historySize go only once they are
//      older than trimGraceMs (XTRIM MINID ~ ... LIMIT len - historySize); maxStreamLength is the
//      hard bound (a reader that far behind gets a reset); then the age bound historyTtlMs;
//   6. PEXPIRE the stream, the channel's registry score, and the idempotency record;
//   7. Redis Cluster: SPUBLISH on the stream's key, the live readers' doorbell
//      (redis-cluster-reader.ts).
// Replies: {'ok', {ids}} | {'dup', record json, now ms} | {'limit'} | {'wrongtype', type}.
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

const PUBLISH_LUA = `
local stream = KEYS[1]
local flags = ARGV[11]
local registry = nil
local record = KEYS[2]
if string.find(flags, 'r', 1, true) then
  registry = KEYS[2]
  record = KEYS[3]
end
local kind = redis.call('TYPE', stream)['ok']
if kind ~= 'stream' and kind ~= 'none' then return {'wrongtype', kind} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if record then
  local rec = redis.call('GET', record)
  if rec then
    if string.find(flags, 'w', 1, true) then
      local left = redis.call('PTTL', record)
      if left > 0 then redis.call('PEXPIRE', record, left) end
    end
    return {'dup', rec, tostring(now)}
  end
end
if registry then
  redis.call('ZREMRANGEBYSCORE', registry, '-inf', now)
  if not redis.call('ZSCORE', registry, ARGV[1])
      and redis.call('ZCARD', registry) >= tonumber(ARGV[2]) then
    return {'limit'}
  end
end
local added = 0
if kind == 'stream' then
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] break end
  end
end
local ids = {}
for i = 12, #ARGV, 2 do
  added = added + 1
  ids[#ids + 1] = redis.call('XADD', stream, '*', 'n', added, 'e', ARGV[i], 'd', ARGV[i + 1])
end
local lastMs = tonumber(string.match(ids[#ids], '^(%d+)'))
local len = redis.call('XLEN', stream)
local keep = tonumber(ARGV[3])
if len > keep then
  redis.call('XTRIM', stream, 'MINID', '~', (lastMs - tonumber(ARGV[4])) .. '-0', 'LIMIT', len - keep)
end
if len > tonumber(ARGV[5]) then redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[5]) end
redis.call('XTRIM', stream, 'MINID', '~', (lastMs - tonumber(ARGV[6])) .. '-0')
redis.call('PEXPIRE', stream, ARGV[7])
if registry then redis.call('ZADD', registry, now + tonumber(ARGV[7]), ARGV[1]) end
if record then
  local rec = cjson.encode({f = ARGV[8], ids = ids, l = now + tonumber(ARGV[10])})
  redis.call('SET', record, rec, 'PX', ARGV[9])
end
if string.find(flags, 'n', 1, true) then redis.call('SPUBLISH', stream, ids[#ids]) end
return {'ok', ids}
`;

/**
 * Redis Cluster's channel bound, before the publish script (not atomic with it): drops expired
 * channels, refuses a new one past the bound, and scores the channel with its stream's expiry
 * (plus the time a replica may skip this step for a channel it registered: REGISTRY_REFRESH_MS).
 * Returns 1, or 0 for "limit".
 */
export const REGISTER_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
`;

export interface PublishScriptArgs {
  stream: string;
  /** The channel registry, when the script keeps the bound (not with Redis Cluster). */
  registry: string | null;
  /** The idempotency record's key, when the publish carries one. */
  record: string | null;
  channel: string;
  maxChannels: number;
  historySize: number;
  trimGraceMs: number;
  maxStreamLength: number;
  historyTtlMs: number;
  /** PEXPIRE of the stream (and its registry score). */
  keyTtlMs: number;
  fingerprint: string;
  idempotencyTtlMs: number;
  leaseMs: number;
  /** SPUBLISH on the stream's key (Redis Cluster's live readers). */
  notify: boolean;
  /** event name ('' for none), data, event name, data, ... */
  fields: string[];
}

export type PublishReply =
  | ['ok', string[]]
  | ['dup', string, string]
  | ['limit']
  | ['wrongtype', string];

/** A publish is acknowledged once this many replicas have its writes (Redis's WAIT). */
export interface WaitFor {
  readonly replicas: number;
  readonly timeoutMs: number;
}

export interface PublishResult {
  readonly reply: PublishReply;
  /** Replicas WAIT counted (null without WAIT). */
  readonly replicas: number | null;
}

type ScriptCaller = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** A redirection or a refusal: the script did not run, sending it again is safe. */
const NOT_RUN = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|NOSCRIPT)/;
/** Attempts of a WAIT pipeline that met a redirection (a resharding or a failover under way). */
const REDIRECT_ATTEMPTS = 30;
const REDIRECT_DELAY_MS = 100;

function scriptArgs(a: PublishScriptArgs, wait: boolean): (string | number)[] {
  const keys = [a.stream];
  if (a.registry !== null) keys.push(a.registry);
  if (a.record !== null) keys.push(a.record);
  const flags = `${a.registry !== null ? 'r' : ''}${a.notify ? 'n' : ''}${wait ? 'w' : ''}-`;
  return [
    keys.length,
    ...keys,
    a.channel,
    a.maxChannels,
    a.historySize,
    a.trimGraceMs,
    a.maxStreamLength,
    a.historyTtlMs,
    a.keyTtlMs,
    a.fingerprint,
    a.idempotencyTtlMs,
    a.leaseMs,
    flags,
    ...a.fields,
  ];
}

/**
 * The publish script on `conn` (one server, Sentinel's master, or a Cluster client routing by the
 * stream's slot). Without `wait`: EVALSHA (loaded again after a NOSCRIPT). With `wait`: the script
 * and `WAIT replicas timeout` in one pipeline, so that both go out on the same connection to the
 * same master and WAIT covers the script's writes (WAIT counts the writes of its own connection);
 * a reconnect in between fails both. A redirection (MOVED/ASK/TRYAGAIN, the script did not run)
 * sends the pair again, up to 30 times 100 ms apart.
 */
export function publishScript(
  conn: Redis | Cluster,
  wait: WaitFor | null,
): (a: PublishScriptArgs) => Promise<PublishResult> {
  conn.defineCommand('httpSsePublish', { lua: PUBLISH_LUA });
  if (wait === null) {
    const call = (conn as unknown as Record<string, ScriptCaller>).httpSsePublish!.bind(conn);
    return async (a) => {
      const [numKeys, ...rest] = scriptArgs(a, false);
      return { reply: (await call(numKeys as number, ...rest)) as PublishReply, replicas: null };
    };
  }
  const sha = createHash('sha1').update(PUBLISH_LUA).digest('hex');
  return async (a) => {
    const args = scriptArgs(a, true);
    let lua = false;
    for (let attempt = 1; ; attempt++) {
      const replies = await conn
        .pipeline()
        .call(lua ? 'EVAL' : 'EVALSHA', lua ? PUBLISH_LUA : sha, ...args)
        .call('WAIT', wait.replicas, wait.timeoutMs)
        .exec();
      const [scriptErr, reply] = replies?.[0] ?? [new Error('empty pipeline reply'), null];
      const [waitErr, replicas] = replies?.[1] ?? [new Error('empty pipeline reply'), null];
      if (scriptErr && /^NOSCRIPT/.test(scriptErr.message) && !lua) {
        lua = true;
        continue;
      }
      if (scriptErr && NOT_RUN.test(scriptErr.message) && attempt < REDIRECT_ATTEMPTS) {
        if ('refreshSlotsCache' in conn) conn.refreshSlotsCache();
        await new Promise((r) => setTimeout(r, REDIRECT_DELAY_MS));
        continue;
      }
      if (scriptErr) throw scriptErr;
      if (waitErr) throw waitErr;
      return { reply: reply as PublishReply, replicas: Number(replicas) };
    }
  };
}
