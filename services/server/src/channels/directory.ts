// The channel directory behind GET /channels: which channels exist and what each holds. A channel
// exists while it has subscribers (on any replica, with the Redis broker) or history. The memory
// directory reads this process (the broker's records, the hub's subscribers); the Redis one adds
// what Redis holds and every replica's subscriber counts (redis-directory.ts).
import { type EventId, formatEventId } from '../broker/event-id.ts';
import type { RecordFacts } from '../broker/memory-broker.ts';

/** One channel as the API shows it. */
export interface ChannelFacts {
  readonly name: string;
  /** Open streams on the channel (every replica's, with the Redis broker). */
  readonly subscribers: number;
  /** The newest id given to an event of the channel, or null when it never had one. */
  readonly lastEventId: string | null;
  /** Events held for replay (a resume from `0-0` gets them). */
  readonly historyLength: number;
  /** When that newest event was published (ISO 8601, from its id's milliseconds), or null. */
  readonly lastPublishAt: string | null;
}

export interface ChannelPage {
  readonly channels: ChannelFacts[];
  /** The cursor of the next page (the name of this page's last channel), or null for the last. */
  readonly next: string | null;
}

export interface ChannelQuery {
  /** Only names that start with this ('' for all). */
  readonly prefix: string;
  /** Most channels in the page. */
  readonly limit: number;
  /** Only names after this one (the previous page's `next`), or null from the start. */
  readonly after: string | null;
}

export interface ChannelDirectory {
  /** One page of existing channels, sorted by name. */
  list(query: ChannelQuery): Promise<ChannelPage>;
  /** One channel, or null when it does not exist. */
  get(name: string): Promise<ChannelFacts | null>;
  /** Channels that exist now (sse_channels). */
  count(): Promise<number>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The facts of one channel from its counts and newest id; null when it does not exist. */
export function channelFacts(
  name: string,
  subscribers: number,
  historyLength: number,
  last: EventId | null,
): ChannelFacts | null {
  if (subscribers <= 0 && historyLength <= 0) return null;
  const known = last !== null && (last.ms > 0 || last.seq > 0);
  return {
    name,
    subscribers,
    lastEventId: known ? formatEventId(last) : null,
    historyLength,
    lastPublishAt: known ? new Date(last.ms).toISOString() : null,
  };
}

/** Names matching the query's prefix and cursor, sorted (names are ASCII: code-unit order). */
export function candidates(names: Iterable<string>, query: ChannelQuery): string[] {
  const out: string[] = [];
  for (const name of names) {
    if (!name.startsWith(query.prefix)) continue;
    if (query.after !== null && name <= query.after) continue;
    out.push(name);
  }
  return out.sort();
}

/**
 * A page from sorted candidate names: their facts are read in batches (names that turn out not to
 * exist are skipped) until one more than the limit is found or the names run out.
 */
export async function collectPage(
  sorted: readonly string[],
  limit: number,
  factsOf: (names: string[]) => Promise<(ChannelFacts | null)[]>,
): Promise<ChannelPage> {
  const found: ChannelFacts[] = [];
  let i = 0;
  while (i < sorted.length && found.length <= limit) {
    const batch = sorted.slice(i, i + limit + 1 - found.length);
    i += batch.length;
    for (const facts of await factsOf(batch)) if (facts !== null) found.push(facts);
  }
  if (found.length <= limit) return { channels: found, next: null };
  found.length = limit;
  return { channels: found, next: found[limit - 1]!.name };
}

/** Where the memory directory reads: the broker's records and this process's subscribers. */
export interface LocalSources {
  /** Channel records (memory broker), or none (a broker that keeps no records here). */
  records(): Iterable<RecordFacts>;
  record(name: string): RecordFacts | null;
  subscribers(): Iterable<[string, number]>;
  subscriberCount(name: string): number;
}

/** The memory broker's directory: everything is in this process. */
export class MemoryChannelDirectory implements ChannelDirectory {
  private readonly local: LocalSources;

  constructor(local: LocalSources) {
    this.local = local;
  }

  private snapshot(): Map<string, ChannelFacts> {
    const subs = new Map(this.local.subscribers());
    const out = new Map<string, ChannelFacts>();
    for (const r of this.local.records()) {
      const facts = channelFacts(r.name, subs.get(r.name) ?? 0, r.historyLength, r.last);
      if (facts !== null) out.set(r.name, facts);
    }
    for (const [name, n] of subs) {
      if (!out.has(name)) out.set(name, channelFacts(name, n, 0, null)!);
    }
    return out;
  }

  list(query: ChannelQuery): Promise<ChannelPage> {
    const all = this.snapshot();
    const sorted = candidates(all.keys(), query);
    return collectPage(sorted, query.limit, (names) =>
      Promise.resolve(names.map((n) => all.get(n) ?? null)),
    );
  }

  get(name: string): Promise<ChannelFacts | null> {
    const r = this.local.record(name);
    const subs = this.local.subscriberCount(name);
    return Promise.resolve(channelFacts(name, subs, r?.historyLength ?? 0, r?.last ?? null));
  }

  count(): Promise<number> {
    return Promise.resolve(this.snapshot().size);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
