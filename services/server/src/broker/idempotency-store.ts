// The memory broker's idempotency keys: what the first publish with a key on a channel answered,
// kept for ttlMs and bounded in count and bytes (the oldest key goes first when either is full).
// The Redis broker keeps the same records in Redis (see redis-scripts.ts); both read them with
// readRecord(), so a key means the same on either broker.
import type { IdempotencyRequest, PublishAnswer, PublishOutcome } from './broker.ts';

/** One idempotency key's record: the body's fingerprint, the ids, and the answer once given. */
export interface IdempotencyRecord {
  /** Fingerprint of the events (see routes/publish.ts). */
  readonly f: string;
  readonly ids: readonly string[];
  /** Subscribers in the answer; null while the first request is still in flight. */
  s: number | null;
  /** Until when (ms) a record without an answer counts as in flight; after it, as answered. */
  readonly l: number;
}

/**
 * What a publish with an already used key gets: the first answer (an in-flight record past its
 * lease counts as answered, to no subscribers: its request is gone), "in flight", or "reused"
 * when the body differs.
 */
export function readRecord(
  record: IdempotencyRecord,
  request: IdempotencyRequest,
  now: number,
): PublishOutcome {
  if (record.f !== request.fingerprint) return { kind: 'key_reused' };
  if (record.s === null && now < record.l) return { kind: 'in_flight' };
  return { kind: 'replayed', answer: { ids: record.ids, subscribers: record.s ?? 0 } };
}

interface Entry {
  readonly record: IdempotencyRecord;
  readonly expiresAt: number;
  readonly bytes: number;
}

export interface IdempotencyStoreOptions {
  ttlMs: number;
  maxKeys: number;
  maxBytes: number;
  /** How long a record without an answer counts as in flight. */
  leaseMs: number;
}

export class IdempotencyStore {
  /** Insertion order is age order: the first entry is the oldest. */
  private readonly entries = new Map<string, Entry>();
  private readonly options: IdempotencyStoreOptions;
  private readonly now: () => number;
  private bytes = 0;

  constructor(options: IdempotencyStoreOptions, now: () => number = Date.now) {
    this.options = options;
    this.now = now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The outcome for a key already used on the channel, or null when the key is new. */
  check(channel: string, request: IdempotencyRequest): PublishOutcome | null {
    const name = entryName(channel, request.key);
    const entry = this.entries.get(name);
    const now = this.now();
    if (entry === undefined) return null;
    if (entry.expiresAt <= now) {
      this.delete(name, entry);
      return null;
    }
    return readRecord(entry.record, request, now);
  }

  /** Remembers a new key's publish (in flight until answered). */
  add(channel: string, request: IdempotencyRequest, ids: readonly string[]): void {
    const name = entryName(channel, request.key);
    const now = this.now();
    const old = this.entries.get(name);
    if (old !== undefined) this.delete(name, old);
    let bytes = name.length + request.fingerprint.length + 64;
    for (const id of ids) bytes += id.length + 8;
    const record: IdempotencyRecord = {
      f: request.fingerprint,
      ids,
      s: null,
      l: now + this.options.leaseMs,
    };
    this.entries.set(name, { record, expiresAt: now + this.options.ttlMs, bytes });
    this.bytes += bytes;
    this.evict(now);
  }

  /** Records the answer given to the key's first request. */
  settle(channel: string, key: string, answer: PublishAnswer): void {
    const entry = this.entries.get(entryName(channel, key));
    if (entry !== undefined && entry.record.s === null) entry.record.s = answer.subscribers;
  }

  /** Drops expired keys, then the oldest while over the count or byte bound. */
  private evict(now: number): void {
    const { maxKeys, maxBytes } = this.options;
    for (const [name, entry] of this.entries) {
      const full = this.entries.size > maxKeys || this.bytes > maxBytes;
      if (!full && entry.expiresAt > now) break;
      this.delete(name, entry);
    }
  }

  /** Drops expired keys (called from the broker's sweep). */
  sweep(): void {
    this.evict(this.now());
  }

  private delete(name: string, entry: Entry): void {
    this.entries.delete(name);
    this.bytes -= entry.bytes;
  }
}

/** Channel names hold no NUL: the pair is unambiguous. */
function entryName(channel: string, key: string): string {
  return `${channel}\0${key}`;
}
