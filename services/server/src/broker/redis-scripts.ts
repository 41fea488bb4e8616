// The Redis broker's publish as one Lua script, so that every check and write of a publish is one
// atomic step on the Redis server (no other client sees half of it, and a retry with the same
// Idempotency-Key can never store the events twice, whichever replica it reaches):
//   1. the stream key must be a stream (or absent): a foreign key of another type fails this
//      channel alone;
//   2. an idempotency key already used on the channel: nothing is written, the record is returned;
//   3. limits.maxChannels across every replica: a sorted set of the channels that hold history,
//      scored by when their stream key expires;
//   4. XADD each event with its sequence number in the channel (field n = entries-added), so that a
//      reader can tell a gap (entries trimmed before it read them) from a continuation;
//   5. trimming that never outruns a reader: entries beyond historySize go only once they are
//      older than trimGraceMs (XTRIM MINID ~ ... LIMIT len - historySize); maxStreamLength is the
//      hard bound (a reader that far behind gets a reset); then the age bound historyTtlMs;
//   6. PEXPIRE the stream, the channel's registry score, and the idempotency record.
// Replies: {'ok', {ids}} | {'dup', record json, now ms} | {'limit'} | {'wrongtype', type}.
import type { Redis } from 'ioredis';

const PUBLISH_LUA = `
local stream = KEYS[1]
local kind = redis.call('TYPE', stream)['ok']
if kind ~= 'stream' and kind ~= 'none' then return {'wrongtype', kind} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if KEYS[3] then
  local rec = redis.call('GET', KEYS[3])
  if rec then return {'dup', rec, tostring(now)} end
end
local registry = KEYS[2]
redis.call('ZREMRANGEBYSCORE', registry, '-inf', now)
if not redis.call('ZSCORE', registry, ARGV[1])
    and redis.call('ZCARD', registry) >= tonumber(ARGV[2]) then
  return {'limit'}
end
local added = 0
if kind == 'stream' then
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] break end
  end
end
local ids = {}
for i = 11, #ARGV, 2 do
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
redis.call('ZADD', registry, now + tonumber(ARGV[7]), ARGV[1])
if KEYS[3] then
  local rec = cjson.encode({f = ARGV[8], ids = ids, l = now + tonumber(ARGV[10])})
  redis.call('SET', KEYS[3], rec, 'PX', ARGV[9])
end
return {'ok', ids}
`;

export interface PublishScriptArgs {
  stream: string;
  registry: string;
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
  /** event name ('' for none), data, event name, data, ... */
  fields: string[];
}

export type PublishReply =
  | ['ok', string[]]
  | ['dup', string, string]
  | ['limit']
  | ['wrongtype', string];

type ScriptCaller = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** Registers the script on the connection (EVALSHA, loaded again after a NOSCRIPT). */
export function publishScript(conn: Redis): (a: PublishScriptArgs) => Promise<PublishReply> {
  conn.defineCommand('httpSsePublish', { lua: PUBLISH_LUA });
  const call = (conn as unknown as Record<string, ScriptCaller>).httpSsePublish!.bind(conn);
  return (a) => {
    const keys = a.record === null ? [a.stream, a.registry] : [a.stream, a.registry, a.record];
    return call(
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
      ...a.fields,
    ) as Promise<PublishReply>;
  };
}
