// Event ids: Redis Streams entry ids, `<ms>-<seq>`, for both brokers. `ms` is a Unix time in
// milliseconds that never goes backwards on a channel, `seq` counts events within one ms. Compared
// as the pair (ms, seq); never reused on a channel (see docs/ARCHITECTURE.md, "Event ids").

export interface EventId {
  readonly ms: number;
  readonly seq: number;
}

/** The id before every event: resuming after it replays everything held. */
export const ZERO_ID: EventId = { ms: 0, seq: 0 };

const ID = /^(\d{1,16})-(\d{1,16})$/;

/** Parses `<ms>-<seq>` (both parts safe integers); null when the text is not such an id. */
export function parseEventId(text: string): EventId | null {
  const m = ID.exec(text);
  if (m === null) return null;
  const ms = Number(m[1]);
  const seq = Number(m[2]);
  return Number.isSafeInteger(ms) && Number.isSafeInteger(seq) ? { ms, seq } : null;
}

export function formatEventId(id: EventId): string {
  return `${id.ms}-${id.seq}`;
}

/** Negative when a < b, 0 when equal, positive when a > b. */
export function compareIds(a: EventId, b: EventId): number {
  return a.ms === b.ms ? a.seq - b.seq : a.ms - b.ms;
}

/** The greatest id below `id` (Redis's exclusive-range rule), or ZERO_ID. */
export function previousId(id: EventId): EventId {
  if (id.seq > 0) return { ms: id.ms, seq: id.seq - 1 };
  if (id.ms > 0) return { ms: id.ms - 1, seq: Number.MAX_SAFE_INTEGER };
  return ZERO_ID;
}

/**
 * Makes ids the way Redis's `XADD *` does: ms = max(now, last ms); seq = last seq + 1 within the
 * same ms, else 0. One generator per process serves every channel, so an id is never handed out
 * twice by this process even after a channel is forgotten; across restarts the clock moves on.
 */
export class IdGenerator {
  private ms = 0;
  private seq = -1;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  next(): EventId {
    const now = this.now();
    if (now > this.ms) {
      this.ms = now;
      this.seq = 0;
    } else {
      this.seq++;
    }
    return { ms: this.ms, seq: this.seq };
  }

  /** The last id handed out, or ZERO_ID. */
  get last(): EventId {
    return this.seq < 0 ? ZERO_ID : { ms: this.ms, seq: this.seq };
  }
}
