// The Redis Streams broker: a channel is the stream `<keyPrefix><channel>`; its entries are the
// history of record, shared by every replica and kept across restarts.
//   publish  XADD ... MAXLEN ~ historySize * (in MULTI with XTRIM MINID ~ <now - ttl> and PEXPIRE)
//   replay   XINFO STREAM + XRANGE (<after> + in one MULTI, so placement and events agree
//   live     one dedicated connection per replica loops on XREAD BLOCK over every joined stream
//            (see redis-reader.ts); the hub fans the events out as with the memory broker.
// Ids are Redis's own entry ids. Commands fail fast while Redis is unreachable (no offline queue):
// publish and replay answer 503, open streams stay, and the reader resumes from its cursors.
import type { Redis } from 'ioredis';
import type { BrokerOp } from '../metrics.ts';
import {
  type Broker,
  type BrokerListener,
  type BrokerStateListener,
  BrokerUnavailableError,
  ChannelLimitError,
  type EventInput,
  type FramedEvent,
  type PublishedId,
  type Replay,
} from './broker.ts';
import { type EventId, formatEventId, parseEventId, previousId, ZERO_ID } from './event-id.ts';
import { frameEvent } from './framed-event.ts';
import { redisConnection } from './redis-connection.ts';
import { RedisReader, type StreamEntry } from './redis-reader.ts';
import { placeLastEventId, type RecordState } from './resume.ts';

export interface RedisBrokerOptions {
  url: string;
  keyPrefix: string;
  historySize: number;
  historyTtlMs: number;
  maxChannels: number;
  /** Counts a failed Redis operation (sse_broker_errors_total{op}). */
  onError?: (op: BrokerOp) => void;
}

export function toFramed(entry: StreamEntry): FramedEvent | null {
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

export class RedisBroker implements Broker {
  readonly type = 'redis';
  private readonly options: RedisBrokerOptions;
  private readonly cmd: Redis;
  private readonly reader: RedisReader;
  private listener: BrokerListener | null = null;
  private readonly stateListeners: BrokerStateListener[] = [];
  private wasUp = false;
  private closed = false;

  constructor(options: RedisBrokerOptions) {
    this.options = options;
    this.cmd = redisConnection(options.url, 'http-sse:cmd', { commandTimeout: 2000 });
    this.reader = new RedisReader(
      redisConnection(options.url, 'http-sse:reader'),
      this.cmd,
      options.keyPrefix,
      (channel, entries) => this.deliver(channel, entries),
      () => options.onError?.('read'),
    );
    for (const conn of [this.cmd, this.reader.conn]) {
      conn.on('ready', () => this.stateChanged());
      conn.on('close', () => this.stateChanged());
      conn.on('error', () => {}); // state changes are reported through 'close'/'ready'
    }
  }

  get up(): boolean {
    return this.cmd.status === 'ready' && this.reader.conn.status === 'ready';
  }

  get channelCount(): number {
    return this.reader.size;
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

  async start(): Promise<void> {
    // A failed first attempt is not fatal: ioredis keeps retrying and `up` reports it.
    await Promise.allSettled([this.cmd.connect(), this.reader.conn.connect()]);
    this.reader.start();
  }

  private key(channel: string): string {
    return this.options.keyPrefix + channel;
  }

  private unavailable(op: Exclude<BrokerOp, 'read'>, err: unknown): BrokerUnavailableError {
    this.options.onError?.(op);
    return new BrokerUnavailableError(`redis ${op} failed: ${(err as Error).message}`);
  }

  async publish(channel: string, events: readonly EventInput[]): Promise<PublishedId[]> {
    if (!this.up) throw new BrokerUnavailableError('redis is unreachable');
    const key = this.key(channel);
    const { historySize, historyTtlMs } = this.options;
    const tx = this.cmd.multi();
    for (const e of events) {
      tx.call('XADD', [key, 'MAXLEN', '~', historySize, '*', 'e', e.event ?? '', 'd', e.data]);
    }
    tx.call('XTRIM', [key, 'MINID', '~', `${Math.max(0, Date.now() - historyTtlMs)}-0`]);
    // A channel nobody publishes to for historyTtlMs holds nothing anymore: let the key go.
    tx.call('PEXPIRE', [key, historyTtlMs + 60_000]);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await tx.exec();
    } catch (err) {
      throw this.unavailable('publish', err);
    }
    if (replies === null) throw this.unavailable('publish', new Error('transaction aborted'));
    // Only the ids: the events are framed once, when the reader delivers them.
    const out: PublishedId[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const [err, reply] = replies[i]!;
      if (err) throw this.unavailable('publish', err);
      const id = parseEventId(String(reply));
      if (id === null) throw this.unavailable('publish', new Error(`bad XADD reply ${reply}`));
      out[i] = { ms: id.ms, seq: id.seq, id: formatEventId(id) };
    }
    return out;
  }

  async replay(channel: string, lastEventId: string): Promise<Replay> {
    if (!this.up) throw new BrokerUnavailableError('redis is unreachable');
    const key = this.key(channel);
    const pageSize = this.options.historySize + 200; // MAXLEN ~ keeps up to a node (100) more
    try {
      // Placement and the first page come from one transaction. When the placement asks for
      // another start (a reset: replay from the floor), ask again from there; a trim in between
      // moves the floor, so this repeats until the two agree.
      const parsed = parseEventId(lastEventId.trim());
      let start: string | null = parsed === null ? null : rangeStart(parsed);
      for (let attempt = 0; attempt < 4; attempt++) {
        const [info, first] = await this.infoAndRange(key, start, pageSize);
        const placement = placeLastEventId(lastEventId, info);
        const wanted = rangeStart(placement.after);
        if (wanted !== start) {
          start = wanted;
          continue;
        }
        const events = first.map(toFramed).filter((e) => e !== null);
        if (first.length === pageSize) await this.moreEvents(key, events, pageSize);
        return { placement, events };
      }
      throw new Error('the stream kept moving under the replay');
    } catch (err) {
      throw this.unavailable('replay', err);
    }
  }

  private async infoAndRange(
    key: string,
    start: string | null,
    count: number,
  ): Promise<[RecordState, StreamEntry[]]> {
    const tx = this.cmd.multi().call('XINFO', ['STREAM', key]);
    if (start !== null) tx.call('XRANGE', [key, start, '+', 'COUNT', count]);
    const replies = await tx.exec();
    if (replies === null) throw new Error('transaction aborted');
    const [infoErr, info] = replies[0]!;
    if (infoErr && /no such key/i.test(infoErr.message)) {
      return [{ oldest: null, last: null, maxDeleted: null }, []];
    }
    if (infoErr) throw infoErr;
    const range = start !== null ? replies[1]! : [null, []];
    if (range[0]) throw range[0];
    return [recordState(info as unknown[]), range[1] as StreamEntry[]];
  }

  private async moreEvents(key: string, events: FramedEvent[], count: number): Promise<void> {
    for (;;) {
      const from = `(${events[events.length - 1]!.id}`;
      const page = (await this.cmd.call('XRANGE', [
        key,
        from,
        '+',
        'COUNT',
        count,
      ])) as StreamEntry[];
      for (const e of page) {
        const framed = toFramed(e);
        if (framed !== null) events.push(framed);
      }
      if (page.length < count) return;
    }
  }

  async join(channel: string): Promise<EventId> {
    const known = this.reader.cursor(channel);
    if (known !== null) return known;
    if (this.reader.size >= this.options.maxChannels) {
      throw new ChannelLimitError(this.options.maxChannels);
    }
    if (!this.up) throw new BrokerUnavailableError('redis is unreachable');
    let newest: unknown;
    try {
      newest = await this.cmd.call('XREVRANGE', [this.key(channel), '+', '-', 'COUNT', 1]);
    } catch (err) {
      throw this.unavailable('join', err);
    }
    const entry = (newest as StreamEntry[])[0];
    const after = (entry && parseEventId(entry[0])) || ZERO_ID;
    return this.reader.add(channel, after);
  }

  leave(channel: string): void {
    this.reader.remove(channel);
  }

  private deliver(channel: string, entries: StreamEntry[]): void {
    const events: FramedEvent[] = [];
    for (const e of entries) {
      const framed = toFramed(e);
      if (framed !== null) events.push(framed);
    }
    if (events.length > 0) this.listener?.(channel, events);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listener = null;
    await this.reader.stop();
    this.cmd.disconnect();
  }
}

/** The XRANGE start that replays every event after `after` (exclusive). */
function rangeStart(after: EventId): string {
  return after.ms === 0 && after.seq === 0 ? '-' : `(${formatEventId(after)}`;
}

/**
 * XINFO STREAM's reply (a flat list of names and values) as the record's state. Redis trims
 * streams from the front only, and its max-deleted-entry-id does not count trimmed entries, so
 * "something was removed" is read from entries-added > length: every removed id is older than the
 * first entry still held (or, with none held, up to the last id given out).
 */
export function recordState(info: unknown[]): RecordState {
  const field = (name: string): unknown => {
    for (let i = 0; i + 1 < info.length; i += 2) if (info[i] === name) return info[i + 1];
    return undefined;
  };
  const id = (v: unknown): EventId | null => {
    if (typeof v !== 'string') return null;
    const parsed = parseEventId(v);
    return parsed === null || (parsed.ms === 0 && parsed.seq === 0) ? null : parsed;
  };
  const first = field('first-entry') as StreamEntry | null | undefined;
  const oldest = first ? id(first[0]) : null;
  const last = id(field('last-generated-id'));
  const removed = Number(field('entries-added')) > Number(field('length'));
  const maxDeleted = removed ? (oldest !== null ? previousId(oldest) : last) : null;
  return { oldest, last, maxDeleted };
}
