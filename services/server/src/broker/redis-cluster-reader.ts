// Live delivery for the Redis broker on Redis Cluster. One XREAD cannot span slots (CROSSSLOT, even
// on one node), so the single-server reader's one blocking XREAD over every joined stream has no
// cluster equivalent short of one blocking connection per slot. Instead, per master node:
//   - one connection in sharded Pub/Sub mode (redis-shard-notifier.ts) subscribed to the stream
//     keys of the joined channels that master serves: the publish script SPUBLISHes on the stream's
//     key after its XADDs, so a publish rings exactly the master that stored it;
//   - a ring makes the channel "dirty"; the channel is read from its cursor with a non-blocking
//     `XREAD COUNT 1000 STREAMS <key> <cursor>` through the Cluster client (routed by slot, MOVED/ASK
//     followed), one read at a time per channel, again while a read comes back full.
// A channel is read once right after its subscription is confirmed (what was published before the
// subscription took effect is not missed) and again whenever contact may have been lost: a
// notifier that closed (a master gone), a key whose slot moved (the master's unasked
// `sunsubscribe`, or a slot map that names another master), after which the cursor is confirmed
// against the stream (XINFO) before the read, as the single-server reader does after a reconnect.
// The slot map is checked on every refresh of the Cluster client (every 2 s, and after a MOVED).
import type { Cluster } from 'ioredis';
import type { EventId } from './event-id.ts';
import { reconnectDelay } from './redis-connection.ts';
import { Cursors, type LiveReader, type ReaderEvents, type StreamEntry } from './redis-cursors.ts';
import { keySlot, type RedisKeys } from './redis-keys.ts';
import { ShardNotifier } from './redis-shard-notifier.ts';

const COUNT = 1000;
export const XINFO_LUA = "return redis.call('XINFO', 'STREAM', KEYS[1])";
/** The slot map is compared with the subscriptions at least this often. */
const RECONCILE_EVERY_MS = 1000;

export class ClusterReader implements LiveReader {
  /** The reader's own Cluster client (its reads never queue behind a publish's WAIT). */
  readonly cluster: Cluster;
  private readonly keys: RedisKeys;
  private readonly on: ReaderEvents;
  private readonly password: string;
  private readonly xinfo: (key: string) => Promise<unknown>;
  private readonly cursors = new Cursors();
  /** The epoch in which each channel's cursor was last checked against its stream. */
  private readonly checked = new Map<string, number>();
  /** The master each joined channel is subscribed at. */
  private readonly where = new Map<string, string>();
  private readonly notifiers = new Map<string, ShardNotifier>();
  private readonly dirty = new Set<string>();
  private readonly reading = new Set<string>();
  private readonly failures = new Map<string, number>();
  private pumpScheduled = false;
  private reconciling: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Reads in flight, and when the oldest of them started (0: none; for the health check). */
  private inFlight = 0;
  busySince = 0;

  constructor(cluster: Cluster, keys: RedisKeys, password: string, on: ReaderEvents) {
    this.cluster = cluster;
    this.keys = keys;
    this.password = password;
    this.on = on;
    cluster.on('refresh', () => this.reconcile());
    cluster.on('ready', () => this.reconcile());
    // XINFO names no key ioredis can route by: through a script that declares it.
    cluster.defineCommand('httpSseXinfo', { lua: XINFO_LUA, numberOfKeys: 1 });
    const call = (cluster as unknown as Record<string, (key: string) => Promise<unknown>>)
      .httpSseXinfo!;
    this.xinfo = call.bind(cluster);
  }

  get size(): number {
    return this.cursors.size;
  }

  cursor(channel: string): EventId | null {
    return this.cursors.cursor(channel);
  }

  add(channel: string, after: EventId, n: number | null): EventId {
    this.cursors.set(channel, after, n);
    this.checked.set(channel, this.cursors.epoch);
    this.reconcile();
    return after;
  }

  remove(channel: string): void {
    this.cursors.delete(channel);
    this.checked.delete(channel);
    this.failures.delete(channel);
    const node = this.where.get(channel);
    this.where.delete(channel);
    if (node !== undefined) this.notifiers.get(node)?.unsubscribe(this.keys.stream(channel));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.timer = setInterval(() => this.reconcile(), RECONCILE_EVERY_MS);
    this.timer.unref();
    this.reconcile();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.reconciling;
    for (const n of this.notifiers.values()) n.close();
    this.notifiers.clear();
    this.cluster.disconnect();
  }

  /** Subscriptions follow the slot map (serialized: a request meanwhile runs it once more). */
  private reconcile(): void {
    if (!this.running) return;
    if (this.reconciling !== null) {
      this.again = true;
      return;
    }
    this.reconciling = this.subscribeAll()
      .catch(() => {})
      .finally(() => {
        this.reconciling = null;
        if (this.again) {
          this.again = false;
          this.reconcile();
        }
      });
  }

  /** The master of a slot in the Cluster client's map, or null while it is not known. */
  private ownerOf(channel: string): string | null {
    return this.cluster.slots[keySlot(this.keys.stream(channel))]?.[0] ?? null;
  }

  private async subscribeAll(): Promise<void> {
    if (this.cluster.status !== 'ready') return;
    const wanted = new Map<string, string[]>();
    for (const channel of this.cursors.channels()) {
      const owner = this.ownerOf(channel);
      if (owner === null) continue;
      const at = this.where.get(channel);
      const notifier = at === undefined ? undefined : this.notifiers.get(at);
      if (at === owner && notifier?.subscribed.has(this.keys.stream(channel))) continue;
      if (at !== undefined) {
        // The channel moved (or its subscription was dropped): contact was lost.
        this.where.delete(channel);
        if (at !== owner) notifier?.unsubscribe(this.keys.stream(channel));
        this.cursors.epoch++;
      }
      const list = wanted.get(owner);
      if (list === undefined) wanted.set(owner, [channel]);
      else list.push(channel);
    }
    await Promise.all([...wanted].map(([node, channels]) => this.subscribeAt(node, channels)));
    this.closeIdleNotifiers();
  }

  private notifier(node: string): ShardNotifier {
    const known = this.notifiers.get(node);
    if (known !== undefined && !known.closed) return known;
    const notifier: ShardNotifier = new ShardNotifier(node, this.password, {
      message: (key) => {
        const channel = this.keys.channelOf(key);
        if (channel !== null && this.cursors.has(channel)) this.markDirty(channel);
      },
      unsubscribed: (key) => {
        const channel = this.keys.channelOf(key);
        if (channel !== null && this.where.get(channel) === node) this.where.delete(channel);
        this.cursors.epoch++;
        this.cluster.refreshSlotsCache();
      },
      closed: () => {
        if (this.notifiers.get(node) === notifier) this.notifiers.delete(node);
        for (const [channel, at] of this.where) if (at === node) this.where.delete(channel);
        this.cursors.epoch++;
        if (this.running) this.cluster.refreshSlotsCache();
      },
    });
    this.notifiers.set(node, notifier);
    return notifier;
  }

  private async subscribeAt(node: string, channels: string[]): Promise<void> {
    const notifier = this.notifier(node);
    await Promise.all(
      channels.map(async (channel) => {
        const key = this.keys.stream(channel);
        try {
          await notifier.subscribe(key);
        } catch (err) {
          // MOVED: the map is stale; anything else: the node is going. The next pass retries.
          if (/^(MOVED|ASK)/.test((err as Error).message)) this.cluster.refreshSlotsCache();
          return;
        }
        if (!this.cursors.has(channel)) {
          notifier.unsubscribe(key); // left meanwhile
          return;
        }
        this.where.set(channel, node);
        this.markDirty(channel); // what was published before the subscription took effect
      }),
    );
  }

  /** Closes connections to nodes that serve no joined channel any more. */
  private closeIdleNotifiers(): void {
    const used = new Set(this.where.values());
    for (const [node, n] of this.notifiers) {
      if (!used.has(node) && n.subscribed.size === 0) {
        this.notifiers.delete(node);
        n.close();
      }
    }
  }

  private markDirty(channel: string): void {
    this.dirty.add(channel);
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    for (const channel of this.dirty) {
      if (this.reading.has(channel)) continue; // read again when the read under way is back
      this.dirty.delete(channel);
      this.reading.add(channel);
      if (this.inFlight++ === 0) this.busySince = Date.now();
      void this.read(channel).finally(() => {
        this.reading.delete(channel);
        if (--this.inFlight === 0) this.busySince = 0;
        if (this.dirty.has(channel)) this.markDirty(channel);
      });
    }
  }

  private async read(channel: string): Promise<void> {
    if (!this.running || !this.cursors.has(channel)) return;
    const key = this.keys.stream(channel);
    try {
      const epoch = this.cursors.epoch;
      if (this.checked.get(channel) !== epoch) {
        const info = await this.xinfo(key).catch((err: Error) => {
          if (/no such key/i.test(err.message)) return null;
          throw err;
        });
        this.cursors.confirm(channel, info, epoch);
        this.checked.set(channel, epoch);
      }
      const from = this.cursors.idOf(channel);
      if (from === undefined) return;
      const reply = (await this.cluster.call('XREAD', 'COUNT', COUNT, 'STREAMS', key, from)) as
        | [string, StreamEntry[]][]
        | null;
      this.failures.delete(channel);
      for (const [, entries] of reply ?? []) {
        this.cursors.advance(channel, entries, this.on.deliver);
        if (entries.length >= COUNT) this.dirty.add(channel);
      }
    } catch (err) {
      if (!this.running || !this.cursors.has(channel)) return;
      if (/^WRONGTYPE/.test((err as Error).message)) {
        const type = await this.cluster.call('TYPE', key).catch(() => 'another type');
        this.remove(channel);
        this.on.fault(channel, `its Redis key holds a ${String(type)}, not a stream`);
        return;
      }
      this.on.error();
      const failures = (this.failures.get(channel) ?? 0) + 1;
      this.failures.set(channel, failures);
      const retry = setTimeout(
        () => {
          if (this.cursors.has(channel)) this.markDirty(channel);
        },
        reconnectDelay(failures, 1000),
      );
      retry.unref();
    }
  }
}
