// The Redis Streams broker: a channel is a stream (`<keyPrefix><channel>`, with Redis Cluster
// `<keyPrefix>{<channel>}`, redis-keys.ts); its entries are the history of record, shared by every
// replica and kept across restarts.
//   publish  one Lua script (redis-scripts.ts): idempotency key, channel bound, XADD with the
//            channel's sequence number, trimming that never outruns a reader, expiry; with
//            broker.redis.waitReplicas, `WAIT` on the same connection before the answer
//   replay   XINFO STREAM + XREVRANGE in one MULTI, one read for every resumer waiting on the
//            channel (redis-replay.ts), at most historySize events
//   live     one server or Sentinel: one dedicated connection per replica loops on XREAD BLOCK over
//            every joined stream (redis-reader.ts); Cluster: per master, a sharded Pub/Sub doorbell
//            and non-blocking reads of the channels that rang (redis-cluster-reader.ts); the hub
//            fans the events out as with the memory broker
//   health   PING probes and the reader's progress (redis-health.ts): `up` turns false within
//            about two seconds of Redis not answering (Cluster: of no master answering)
// Where Redis is (one server, a Sentinel set, a Cluster) is redis-connection.ts's concern: after a
// failover every connection finds the new master by itself, and the readers resume from their
// cursors there (entries the new master lacks become a reset for the live subscribers).
// Ids are Redis's own entry ids. Commands fail fast while Redis is unreachable (no offline queue):
// publish and replay answer 503, open streams stay, and the reader resumes from its cursors.
import type { Cluster, Redis } from 'ioredis';
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
import { ClusterReader, XINFO_LUA } from './redis-cluster-reader.ts';
import {
  clusterConnection,
  endConnection,
  masterConfirmed,
  onMasterConfirmed,
  type RedisTarget,
  redisConnection,
  targetDelay,
} from './redis-connection.ts';
import {
  type Gap,
  infoField,
  type LiveReader,
  type ReaderEvents,
  type StreamEntry,
} from './redis-cursors.ts';
import { ClusterHealth, RedisHealth } from './redis-health.ts';
import { RedisKeys } from './redis-keys.ts';
import { RedisReader } from './redis-reader.ts';
import { ReplayReads, type ReplayWindow } from './redis-replay.ts';
import {
  type PublishReply,
  type PublishResult,
  type PublishScriptArgs,
  publishScript,
  REGISTER_LUA,
} from './redis-scripts.ts';
import { type RedisTopology, watchCluster, watchMaster } from './redis-topology.ts';
import type { RecordState } from './resume.ts';

export interface RedisBrokerOptions {
  target: RedisTarget;
  keyPrefix: string;
  historySize: number;
  historyTtlMs: number;
  /** Entries beyond historySize are trimmed only once older than this (a reader behind keeps them). */
  trimGraceMs: number;
  /** Hard bound of a stream's length, whatever the grace. */
  maxStreamLength: number;
  maxChannels: number;
  idempotency: { ttlMs: number; leaseMs: number };
  /** Acknowledge a publish only once WAIT counted this many replicas (0: no WAIT). */
  waitReplicas: number;
  waitTimeoutMs: number;
  /** Counts a failed Redis operation (sse_broker_errors_total{op}). */
  onError?: (op: BrokerOp) => void;
  /** The master(s) the broker talks to, once at each change (logged; failovers counted). */
  onTopology?: (topology: RedisTopology) => void;
}

/** History reads in flight at once across channels (the rest wait their turn). */
const REPLAY_CONCURRENCY = 4;
/** A stream key lives this long past the history's age bound after its last publish. */
const KEY_GRACE_MS = 60_000;
/**
 * Redis Cluster: a replica registers a channel in the registry (the channel bound) at most this
 * often; the registry's score runs this much past the stream's expiry, so it never undercounts.
 */
const REGISTRY_REFRESH_MS = 5000;
/** Command timeout; a publish that waits for replicas gets its WAIT timeout on top. */
const COMMAND_TIMEOUT_MS = 2000;

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

/**
 * The error means Redis never ran the command (nothing can have been stored): never sent, refused
 * by a replica (READONLY: a demoted master) or redirected by the cluster every time.
 */
function neverSent(err: unknown): boolean {
  const message = (err as Error).message ?? '';
  return (
    /isn't writeable|Connection is closed\.$|Cluster isn't ready|Too many Cluster redirections/.test(
      message,
    ) || /^(READONLY|MOVED|ASK|TRYAGAIN|CLUSTERDOWN|LOADING|MASTERDOWN)/.test(message)
  );
}

type InfoCaller = (key: string) => Promise<unknown>;

/** The connections of one Redis layout: commands, the live reader, readiness. */
interface Link {
  readonly cmd: Redis | Cluster;
  readonly reader: LiveReader;
  /** XINFO STREAM of a key (through a script with Cluster: XINFO names no key ioredis routes by). */
  readonly xinfo: InfoCaller;
  /** Every connection ready and Redis answering. */
  up(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** One server or a Sentinel set: a command connection and the blocking reader's. */
function masterLink(
  target: Exclude<RedisTarget, { kind: 'cluster' }>,
  keys: RedisKeys,
  events: ReaderEvents,
  commandTimeout: number,
  changed: () => void,
  topology: (t: RedisTopology) => void,
): Link {
  const cmd = redisConnection(target, 'http-sse:cmd', { commandTimeout });
  const reader = new RedisReader(
    redisConnection(target, 'http-sse:reader'),
    cmd,
    keys,
    events,
    targetDelay(target),
  );
  const health = new RedisHealth(cmd, reader, changed);
  for (const conn of [cmd, reader.conn]) {
    conn.on('ready', changed);
    conn.on('close', changed);
    conn.on('error', () => {}); // state changes are reported through 'close'/'ready'
    onMasterConfirmed(conn, changed);
  }
  watchMaster(cmd, target.kind, topology);
  return {
    cmd,
    reader,
    xinfo: (key) => cmd.call('XINFO', ['STREAM', key]),
    up: () =>
      cmd.status === 'ready' &&
      reader.conn.status === 'ready' &&
      masterConfirmed(cmd) &&
      masterConfirmed(reader.conn) &&
      health.ok,
    async start() {
      // A failed first attempt is not fatal: ioredis keeps retrying and `up` reports it.
      await Promise.allSettled([cmd.connect(), reader.conn.connect()]);
      reader.start();
      health.start();
    },
    async stop() {
      health.stop();
      await reader.stop();
      endConnection(cmd);
    },
  };
}

/** Redis Cluster: a command client, and the reader's own client and doorbells. */
function clusterLink(
  target: Extract<RedisTarget, { kind: 'cluster' }>,
  keys: RedisKeys,
  events: ReaderEvents,
  commandTimeout: number,
  changed: () => void,
  topology: (t: RedisTopology) => void,
): Link {
  const cmd = clusterConnection(target, 'http-sse:cmd', { commandTimeout });
  const readerClient = clusterConnection(target, 'http-sse:reader', {
    commandTimeout: COMMAND_TIMEOUT_MS,
  });
  const reader = new ClusterReader(readerClient, keys, target.password, events);
  const health = new ClusterHealth(cmd, changed);
  for (const c of [cmd, readerClient]) {
    c.on('ready', changed);
    c.on('close', changed);
    c.on('end', changed);
    c.on('error', () => {}); // reported through readiness and the probes
    c.on('node error', () => {});
  }
  cmd.defineCommand('httpSseXinfo', { lua: XINFO_LUA, numberOfKeys: 1 });
  const xinfo = (cmd as unknown as Record<string, InfoCaller>).httpSseXinfo!.bind(cmd);
  watchCluster(cmd, topology);
  return {
    cmd,
    reader,
    xinfo,
    up: () => cmd.status === 'ready' && readerClient.status === 'ready' && health.ok,
    async start() {
      await Promise.allSettled([cmd.connect(), readerClient.connect()]);
      reader.start();
      health.start();
    },
    async stop() {
      health.stop();
      await reader.stop();
      cmd.disconnect();
    },
  };
}

const NO_RECORD: RecordState = { oldest: null, last: null, maxDeleted: null };

export class RedisBroker implements Broker {
  readonly type = 'redis';
  private readonly options: RedisBrokerOptions;
  private readonly keys: RedisKeys;
  private readonly link: Link;
  private readonly cmd: Redis | Cluster;
  private readonly reader: LiveReader;
  private readonly replays: ReplayReads;
  private readonly runPublish: (a: PublishScriptArgs) => Promise<PublishResult>;
  /** Redis Cluster: when this replica last registered each channel (the channel bound). */
  private readonly registered = new Map<string, number>();
  private listener: BrokerListener | null = null;
  private readonly stateListeners: BrokerStateListener[] = [];
  private readonly faultListeners: ChannelFaultListener[] = [];
  /** Channels whose key holds another type (reported once until they work again). */
  private readonly faulted = new Set<string>();
  private wasUp = false;
  private closed = false;

  constructor(options: RedisBrokerOptions) {
    this.options = options;
    const { target } = options;
    this.keys = new RedisKeys(options.keyPrefix, target.kind === 'cluster');
    const events: ReaderEvents = {
      deliver: (channel, entries, gap) => this.deliver(channel, entries, gap),
      fault: (channel, why) => {
        this.fault(channel, why);
      },
      error: () => options.onError?.('read'),
    };
    const waits = options.waitReplicas > 0;
    const commandTimeout = COMMAND_TIMEOUT_MS + (waits ? options.waitTimeoutMs : 0);
    const changed = () => this.stateChanged();
    const topology = (t: RedisTopology) => options.onTopology?.(t);
    this.link =
      target.kind === 'cluster'
        ? clusterLink(target, this.keys, events, commandTimeout, changed, topology)
        : masterLink(target, this.keys, events, commandTimeout, changed, topology);
    this.cmd = this.link.cmd;
    this.reader = this.link.reader;
    this.runPublish = publishScript(
      this.cmd,
      waits ? { replicas: options.waitReplicas, timeoutMs: options.waitTimeoutMs } : null,
    );
    this.replays = new ReplayReads(
      (ch, from) => this.readWindow(ch, from),
      (ch, last) => {
        const delivered = this.reader.cursor(ch);
        return delivered !== null && compareIds(delivered, last) <= 0;
      },
      REPLAY_CONCURRENCY,
    );
  }

  get up(): boolean {
    return this.link.up();
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

  start(): Promise<void> {
    return this.link.start();
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

  /**
   * Redis Cluster: the channel bound as its own step before the publish script (the registry
   * cannot share every channel's slot). Skipped for a channel this replica registered within
   * REGISTRY_REFRESH_MS, whose registry score still runs past its stream's expiry.
   */
  private async register(channel: string): Promise<void> {
    const now = Date.now();
    const at = this.registered.get(channel);
    if (at !== undefined && now - at < REGISTRY_REFRESH_MS) return;
    const o = this.options;
    let ok: unknown;
    try {
      ok = await this.cmd.eval(
        REGISTER_LUA,
        1,
        this.keys.registry,
        channel,
        o.maxChannels,
        o.historyTtlMs + KEY_GRACE_MS + REGISTRY_REFRESH_MS,
      );
    } catch (err) {
      throw this.unavailable('publish', err, 'not_published');
    }
    if (Number(ok) !== 1) throw new ChannelLimitError(o.maxChannels);
    if (this.registered.size >= 100_000) {
      for (const [name, t] of this.registered) {
        if (now - t >= REGISTRY_REFRESH_MS) this.registered.delete(name);
      }
    }
    this.registered.set(channel, now);
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
    if (this.keys.cluster) await this.register(channel);
    let result: PublishResult;
    try {
      result = await this.runPublish({
        stream: this.keys.stream(channel),
        registry: this.keys.cluster ? null : this.keys.registry,
        record: idempotency === undefined ? null : this.keys.record(channel, idempotency.key),
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
        notify: this.keys.cluster,
        fields,
      });
    } catch (err) {
      throw this.unavailable('publish', err, neverSent(err) ? 'not_published' : 'unknown');
    }
    const { reply, replicas } = result;
    if (
      replicas !== null &&
      replicas < o.waitReplicas &&
      (reply[0] === 'ok' || reply[0] === 'dup')
    ) {
      // Stored on the master, not (yet) on enough replicas: a failover now could lose it. The
      // retry with the same Idempotency-Key finds the record and waits again.
      throw this.unavailable(
        'publish',
        new Error(`WAIT counted ${replicas} of ${o.waitReplicas} replicas`),
        'unknown',
      );
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
      .eval(SETTLE_LUA, 1, this.keys.record(channel, key), answer.subscribers)
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
    const key = this.keys.stream(channel);
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
      info = await this.link.xinfo(this.keys.stream(channel));
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
      // Entries after gap.after were trimmed (or lost in a failover) before this replica read
      // them: the subscribers who were live here learn it before any later event.
      const floor = previousId(events[0]!);
      events.unshift(frameReset('history_exceeded', gap.after, floor));
    }
    this.listener?.(channel, events);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listener = null;
    await this.link.stop();
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

const field = infoField;

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
