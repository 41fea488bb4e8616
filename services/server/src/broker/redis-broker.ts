// The Redis Streams broker: a channel is the stream `<keyPrefix><channel>`; its entries are the
// history of record, shared by every replica and kept across restarts.
//   publish  one Lua script (redis-scripts.ts): idempotency key, channel bound, XADD with the
//            channel's sequence number, trimming that never outruns a reader, expiry
//   replay   XINFO STREAM + XREVRANGE in one MULTI, one read for every resumer waiting on the
//            channel (redis-replay.ts), at most historySize events
//   live     one dedicated connection per replica loops on XREAD BLOCK over every joined stream
//            (redis-reader.ts); the hub fans the events out as with the memory broker
//   health   PING probes and the reader's progress (redis-health.ts): `up` turns false within
//            about two seconds of Redis not answering
// Ids are Redis's own entry ids. Commands fail fast while Redis is unreachable (no offline queue):
// publish and replay answer 503, open streams stay, and the reader resumes from its cursors.
import type { Redis } from 'ioredis';
import type { BrokerOp } from '../metrics.ts';
import {
  type Broker,
  type BrokerListener,
  type BrokerStateListener,
  BrokerUnavailableError,
  type ChannelFaultListener,
  ChannelLimitError,
  ChannelUnavailableError,
  type EventInput,
  type FramedEvent,
  type IdempotencyRequest,
  type PublishAnswer,
  type PublishOutcome,
  type Replay,
} from './broker.ts';
import {
  compareIds,
  type EventId,
  formatEventId,
  parseEventId,
  previousId,
  ZERO_ID,
} from './event-id.ts';
import { frameEvent, frameReset } from './framed-event.ts';
import { type IdempotencyRecord, readRecord } from './idempotency-store.ts';
import { redisConnection } from './redis-connection.ts';
import { RedisHealth } from './redis-health.ts';
import { type Gap, RedisReader, type StreamEntry } from './redis-reader.ts';
import { ReplayReads, type ReplayWindow } from './redis-replay.ts';
import { type PublishReply, type PublishScriptArgs, publishScript } from './redis-scripts.ts';
import type { RecordState } from './resume.ts';

export interface RedisBrokerOptions {
  url: string;
  keyPrefix: string;
  historySize: number;
  historyTtlMs: number;
  /** Entries beyond historySize are trimmed only once older than this (a reader behind keeps them). */
  trimGraceMs: number;
  /** Hard bound of a stream's length, whatever the grace. */
  maxStreamLength: number;
  maxChannels: number;
  idempotency: { ttlMs: number; leaseMs: number };
  /** Counts a failed Redis operation (sse_broker_errors_total{op}). */
  onError?: (op: BrokerOp) => void;
}

/** History reads in flight at once across channels (the rest wait their turn). */
const REPLAY_CONCURRENCY = 4;
/** A stream key lives this long past the history's age bound after its last publish. */
const KEY_GRACE_MS = 60_000;

/** An entry's SSE bytes, or null when the entry is not one of ours (no valid id). */
function toFramed(entry: StreamEntry): FramedEvent | null {
  const id = parseEventId(entry[0]);
  if (id === null) return null;
  const fields = entry[1];
  let event: string | undefined;
  let data = '';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'e') event = fields[i + 1] || undefined;
    else if (fields[i] === 'd') data = fields[i + 1]!;
  }
  return frameEvent(event === undefined ? { data } : { event, data }, id);
}

function framedAll(entries: readonly StreamEntry[]): FramedEvent[] {
  const out: FramedEvent[] = [];
  for (const e of entries) {
    const framed = toFramed(e);
    if (framed !== null) out.push(framed);
  }
  return out;
}

/** The error means Redis never got the command (nothing can have been stored). */
function neverSent(err: unknown): boolean {
  return /isn't writeable|Connection is closed\.$/.test((err as Error).message ?? '');
}

const NO_RECORD: RecordState = { oldest: null, last: null, maxDeleted: null };

export class RedisBroker implements Broker {
  readonly type = 'redis';
  private readonly options: RedisBrokerOptions;
  private readonly cmd: Redis;
  private readonly reader: RedisReader;
  private readonly health: RedisHealth;
  private readonly replays: ReplayReads;
  private readonly runPublish: (a: PublishScriptArgs) => Promise<PublishReply>;
  private listener: BrokerListener | null = null;
  private readonly stateListeners: BrokerStateListener[] = [];
  private readonly faultListeners: ChannelFaultListener[] = [];
  /** Channels whose key holds another type (reported once until they work again). */
  private readonly faulted = new Set<string>();
  private wasUp = false;
  private closed = false;

  constructor(options: RedisBrokerOptions) {
    this.options = options;
    this.cmd = redisConnection(options.url, 'http-sse:cmd', { commandTimeout: 2000 });
    this.runPublish = publishScript(this.cmd);
    this.reader = new RedisReader(
      redisConnection(options.url, 'http-sse:reader'),
      this.cmd,
      options.keyPrefix,
      {
        deliver: (channel, entries, gap) => this.deliver(channel, entries, gap),
        fault: (channel, why) => this.fault(channel, why),
        error: () => options.onError?.('read'),
      },
    );
    this.health = new RedisHealth(this.cmd, this.reader, () => this.stateChanged());
    this.replays = new ReplayReads(
      (ch, from) => this.readWindow(ch, from),
      (ch, last) => {
        const delivered = this.reader.cursor(ch);
        return delivered !== null && compareIds(delivered, last) <= 0;
      },
      REPLAY_CONCURRENCY,
    );
    for (const conn of [this.cmd, this.reader.conn]) {
      conn.on('ready', () => this.stateChanged());
      conn.on('close', () => this.stateChanged());
      conn.on('error', () => {}); // state changes are reported through 'close'/'ready'
    }
  }

  get up(): boolean {
    return this.cmd.status === 'ready' && this.reader.conn.status === 'ready' && this.health.ok;
  }

  private stateChanged(): void {
    const up = this.up;
    if (up === this.wasUp || this.closed) return;
    this.wasUp = up;
    for (const l of this.stateListeners) l(up);
  }

  setListener(listener: BrokerListener): void {
    this.listener = listener;
  }

  onStateChange(listener: BrokerStateListener): void {
    this.stateListeners.push(listener);
  }

  onChannelFault(listener: ChannelFaultListener): void {
    this.faultListeners.push(listener);
  }

  async start(): Promise<void> {
    // A failed first attempt is not fatal: ioredis keeps retrying and `up` reports it.
    await Promise.allSettled([this.cmd.connect(), this.reader.conn.connect()]);
    this.reader.start();
    this.health.start();
  }

  private key(channel: string): string {
    return this.options.keyPrefix + channel;
  }

  /** Keys that are not streams hold a `#`, which channel names never do. */
  private registryKey(): string {
    return `${this.options.keyPrefix}#channels`;
  }

  private recordKey(channel: string, key: string): string {
    return `${this.options.keyPrefix}#idem:${channel}#${key}`;
  }

  private unavailable(
    op: Exclude<BrokerOp, 'read'>,
    err: unknown,
    outcome?: 'unknown' | 'not_published',
  ): BrokerUnavailableError {
    this.options.onError?.(op);
    return new BrokerUnavailableError(`redis ${op} failed: ${(err as Error).message}`, outcome);
  }

  /** The channel's key holds another type: reported once, answered 503 for that channel. */
  private fault(channel: string, why: string): ChannelUnavailableError {
    if (!this.faulted.has(channel)) {
      this.faulted.add(channel);
      for (const l of this.faultListeners) l(channel, why);
    }
    return new ChannelUnavailableError(channel, why);
  }

  private healthy(channel: string): void {
    if (this.faulted.delete(channel)) for (const l of this.faultListeners) l(channel, null);
  }

  async publish(
    channel: string,
    events: readonly EventInput[],
    idempotency?: IdempotencyRequest,
  ): Promise<PublishOutcome> {
    if (!this.up) throw new BrokerUnavailableError('redis is unreachable', 'not_published');
    const o = this.options;
    const fields: string[] = new Array(events.length * 2);
    for (let i = 0; i < events.length; i++) {
      fields[2 * i] = events[i]!.event ?? '';
      fields[2 * i + 1] = events[i]!.data;
    }
    let reply: PublishReply;
    try {
      reply = await this.runPublish({
        stream: this.key(channel),
        registry: this.registryKey(),
        record: idempotency === undefined ? null : this.recordKey(channel, idempotency.key),
        channel,
        maxChannels: o.maxChannels,
        historySize: o.historySize,
        trimGraceMs: o.trimGraceMs,
        maxStreamLength: o.maxStreamLength,
        historyTtlMs: o.historyTtlMs,
        keyTtlMs: o.historyTtlMs + KEY_GRACE_MS,
        fingerprint: idempotency?.fingerprint ?? '',
        idempotencyTtlMs: o.idempotency.ttlMs,
        leaseMs: o.idempotency.leaseMs,
        fields,
      });
    } catch (err) {
      throw this.unavailable('publish', err, neverSent(err) ? 'not_published' : 'unknown');
    }
    return this.publishOutcome(channel, reply, idempotency);
  }

  private publishOutcome(
    channel: string,
    reply: PublishReply,
    idempotency: IdempotencyRequest | undefined,
  ): PublishOutcome {
    switch (reply[0]) {
      case 'ok': {
        this.healthy(channel);
        const ids = reply[1];
        const last = parseEventId(ids[ids.length - 1] ?? '');
        if (last === null) {
          throw this.unavailable('publish', new Error(`bad XADD reply ${ids}`), 'unknown');
        }
        return { kind: 'published', ids, last };
      }
      case 'dup':
        return readRecord(
          JSON.parse(reply[1]) as IdempotencyRecord,
          idempotency!,
          Number(reply[2]),
        );
      case 'limit':
        throw new ChannelLimitError(this.options.maxChannels);
      case 'wrongtype':
        throw this.fault(channel, `its Redis key holds a ${reply[1]}, not a stream`);
    }
  }

  settleIdempotent(channel: string, key: string, answer: PublishAnswer): void {
    if (!this.up) return; // the record's lease runs out: retries then get the ids, 0 subscribers
    void this.cmd
      .eval(SETTLE_LUA, 1, this.recordKey(channel, key), answer.subscribers)
      .catch(() => this.options.onError?.('publish'));
  }

  replay(channel: string, lastEventId: string): Promise<Replay> {
    if (!this.up) return Promise.reject(new BrokerUnavailableError('redis is unreachable'));
    return this.replays.replay(channel, lastEventId);
  }

  /**
   * The channel's replay window (its newest historySize entries) after `from`, with the record's
   * state whenever the read reached the window's start.
   */
  private async readWindow(channel: string, from: EventId | null): Promise<ReplayWindow> {
    const key = this.key(channel);
    const size = this.options.historySize;
    const start = from === null ? '-' : `(${formatEventId(from)}`;
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await this.cmd
        .multi()
        .call('XINFO', ['STREAM', key])
        .call('XREVRANGE', [key, '+', start, 'COUNT', size + 1])
        .exec();
    } catch (err) {
      throw this.unavailable('replay', err);
    }
    if (replies === null) throw this.unavailable('replay', new Error('transaction aborted'));
    const [infoErr, info] = replies[0]!;
    if (infoErr && /no such key/i.test(infoErr.message)) {
      return { state: NO_RECORD, events: [], last: ZERO_ID };
    }
    if (infoErr && /^WRONGTYPE/.test(infoErr.message)) throw this.fault(channel, 'not a stream');
    if (infoErr) throw this.unavailable('replay', infoErr);
    const [rangeErr, range] = replies[1]!;
    if (rangeErr) throw this.unavailable('replay', rangeErr);
    const entries = (range as StreamEntry[]).reverse();
    const stream = recordState(info as unknown[]);
    const last = stream.last ?? ZERO_ID;
    if (entries.length > size) {
      // More than the window after `from`: the oldest one read marks the window's floor.
      const dropped = parseEventId(entries.shift()![0]) ?? ZERO_ID;
      const events = framedAll(entries);
      return {
        state: { oldest: events[0] ?? null, last: stream.last, maxDeleted: dropped },
        events,
        last,
      };
    }
    const whole = from === null || entries.length === streamLength(info as unknown[]);
    return { state: whole ? stream : null, events: framedAll(entries), last };
  }

  async join(channel: string): Promise<EventId> {
    const known = this.reader.cursor(channel);
    if (known !== null) return known;
    if (this.reader.size >= this.options.maxChannels) {
      throw new ChannelLimitError(this.options.maxChannels);
    }
    if (!this.up) throw new BrokerUnavailableError('redis is unreachable');
    let info: unknown;
    try {
      info = await this.cmd.call('XINFO', ['STREAM', this.key(channel)]);
    } catch (err) {
      const message = (err as Error).message;
      if (/no such key/i.test(message)) return this.reader.add(channel, ZERO_ID, 0);
      if (/^WRONGTYPE/.test(message)) throw this.fault(channel, 'not a stream');
      throw this.unavailable('join', err);
    }
    this.healthy(channel);
    const fields = info as unknown[];
    const last = parseEventId(String(field(fields, 'last-generated-id'))) ?? ZERO_ID;
    const added = Number(field(fields, 'entries-added'));
    return this.reader.add(channel, last, Number.isSafeInteger(added) ? added : null);
  }

  leave(channel: string): void {
    this.reader.remove(channel);
  }

  private deliver(channel: string, entries: StreamEntry[], gap: Gap | null): void {
    const events = framedAll(entries);
    if (events.length === 0) return;
    if (gap !== null) {
      // Entries after gap.after were trimmed before this replica read them: the subscribers who
      // were live here learn it before any later event.
      const floor = previousId(events[0]!);
      events.unshift(frameReset('history_exceeded', gap.after, floor));
    }
    this.listener?.(channel, events);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listener = null;
    this.health.stop();
    await this.reader.stop();
    this.cmd.disconnect();
  }
}

/** Settles an idempotency record (keeps its expiry; leaves a newer record alone). */
const SETTLE_LUA = `
local rec = redis.call('GET', KEYS[1])
if not rec then return 0 end
local old = cjson.decode(rec)
if old.s then return 0 end
old.s = tonumber(ARGV[1])
redis.call('SET', KEYS[1], cjson.encode(old), 'KEEPTTL')
return 1
`;

function field(info: unknown[], name: string): unknown {
  for (let i = 0; i + 1 < info.length; i += 2) if (info[i] === name) return info[i + 1];
  return undefined;
}

function streamLength(info: unknown[]): number {
  return Number(field(info, 'length'));
}

/**
 * XINFO STREAM's reply (a flat list of names and values) as the record's state. Redis trims
 * streams from the front only, and its max-deleted-entry-id does not count trimmed entries, so
 * "something was removed" is read from entries-added > length: every removed id is older than the
 * first entry still held (or, with none held, up to the last id given out).
 */
function recordState(info: unknown[]): RecordState {
  const id = (v: unknown): EventId | null => {
    if (typeof v !== 'string') return null;
    const parsed = parseEventId(v);
    return parsed === null || (parsed.ms === 0 && parsed.seq === 0) ? null : parsed;
  };
  const first = field(info, 'first-entry') as StreamEntry | null | undefined;
  const oldest = first ? id(first[0]) : null;
  const last = id(field(info, 'last-generated-id'));
  const removed = Number(field(info, 'entries-added')) > Number(field(info, 'length'));
  const maxDeleted = removed ? (oldest !== null ? previousId(oldest) : last) : null;
  return { oldest, last, maxDeleted };
}
