// Replays for the Redis broker, read once for many: a reconnect storm (every client of a channel
// coming back with Last-Event-ID after a deploy) must not become one history read per client.
//   - Requests for a channel wait in one list; one read (XINFO + XREVRANGE, at most historySize + 1
//     entries, framed once) serves every request that was waiting when it was sent. A request
//     that arrives while a read is under way waits for the next one: the read must have started
//     after the subscriber joined, or events published in between would fall through the seam.
//   - The read starts after the oldest Last-Event-ID of the batch (not at the oldest entry held),
//     so resumers that are nearly live cost a short read; one that the partial read cannot place
//     (ahead of the channel, malformed, older than the window) is served by a read of the whole
//     window next.
//   - At most `concurrency` reads are in flight across channels; the rest queue (no timeout:
//     every waiting subscriber is an admitted connection, so the queue is bounded by the limits).
//   - The last window read of a channel serves later requests too, for up to WINDOW_REUSE_MS,
//     while nothing newer than its last entry has been delivered live (`fresh`): a subscriber that
//     joined after the read then gets every later event through the live seam, so the window
//     still leaves no gap. A storm on a quiet channel costs one read.
import type { FramedEvent, Replay } from './broker.ts';
import { compareIds, type EventId, parseEventId } from './event-id.ts';
import { placeLastEventId, type RecordState } from './resume.ts';

/** What one read returns: events after its start, and the record's state when it is known. */
export interface ReplayWindow {
  /** The record as seen by the read, or null when the read began after `from` and the window's
   *  start is not known (then only ids from `from` to `last` can be placed). */
  readonly state: RecordState | null;
  /** The entries after the read's start, oldest first, each framed once. */
  readonly events: readonly FramedEvent[];
  /** The newest id given out on the channel. */
  readonly last: EventId;
}

export type WindowRead = (channel: string, from: EventId | null) => Promise<ReplayWindow>;
/** True while nothing newer than `last` was delivered live on the channel. */
export type WindowFresh = (channel: string, last: EventId) => boolean;

/** How long a window serves later requests (bounded; it is a shared read, not a cache). */
const WINDOW_REUSE_MS = 1000;
const MAX_KEPT_WINDOWS = 1000;

interface KeptWindow {
  readonly window: ReplayWindow;
  readonly from: EventId | null;
  readonly at: number;
}

interface Request {
  readonly lastEventId: string;
  /** Needs the whole window (a partial read could not place it). */
  readonly full: boolean;
  resolve(replay: Replay): void;
  reject(err: unknown): void;
}

export class ReplayReads {
  private readonly read: WindowRead;
  private readonly fresh: WindowFresh;
  private readonly concurrency: number;
  private readonly kept = new Map<string, KeptWindow>();
  private readonly waiting = new Map<string, Request[]>();
  /** Channels with waiting requests and no read under way, oldest first. */
  private readonly queue: string[] = [];
  private readonly reading = new Set<string>();
  private active = 0;

  constructor(read: WindowRead, fresh: WindowFresh, concurrency: number) {
    this.read = read;
    this.fresh = fresh;
    this.concurrency = concurrency;
  }

  replay(channel: string, lastEventId: string): Promise<Replay> {
    const reused = this.fromKept(channel, lastEventId);
    if (reused !== null) return Promise.resolve(reused);
    return new Promise((resolve, reject) => {
      this.enqueue(channel, { lastEventId, full: false, resolve, reject });
    });
  }

  /** The replay from the channel's last window, when that is recent and still fresh. */
  private fromKept(channel: string, lastEventId: string): Replay | null {
    const kept = this.kept.get(channel);
    if (kept === undefined) return null;
    if (performance.now() - kept.at > WINDOW_REUSE_MS || !this.fresh(channel, kept.window.last)) {
      this.kept.delete(channel);
      return null;
    }
    return place(lastEventId, kept.from, kept.window);
  }

  private keep(channel: string, window: ReplayWindow, from: EventId | null): void {
    const at = performance.now();
    if (this.kept.size >= MAX_KEPT_WINDOWS) {
      for (const [name, k] of this.kept) if (at - k.at > WINDOW_REUSE_MS) this.kept.delete(name);
      if (this.kept.size >= MAX_KEPT_WINDOWS) this.kept.clear();
    }
    this.kept.set(channel, { window, from, at });
  }

  private enqueue(channel: string, request: Request): void {
    let list = this.waiting.get(channel);
    if (list === undefined) {
      list = [];
      this.waiting.set(channel, list);
      if (!this.reading.has(channel)) this.queue.push(channel);
    }
    list.push(request);
    this.next();
  }

  private next(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const channel = this.queue.shift()!;
      const batch = this.waiting.get(channel)!;
      this.waiting.delete(channel);
      this.active++;
      this.reading.add(channel);
      void this.serve(channel, batch).finally(() => {
        this.active--;
        this.reading.delete(channel);
        if (this.waiting.has(channel)) this.queue.push(channel);
        this.next();
      });
    }
  }

  private async serve(channel: string, batch: Request[]): Promise<void> {
    const from = startOf(batch);
    let window: ReplayWindow;
    try {
      window = await this.read(channel, from);
    } catch (err) {
      for (const r of batch) r.reject(err);
      return;
    }
    this.keep(channel, window, from);
    for (const r of batch) {
      const replay = place(r.lastEventId, from, window);
      if (replay !== null) r.resolve(replay);
      else this.enqueue(channel, { ...r, full: true });
    }
  }
}

/** Where a batch's read starts: after its oldest id, or null (the whole window). */
function startOf(batch: readonly Request[]): EventId | null {
  let from: EventId | null = null;
  for (const r of batch) {
    const id = r.full ? null : parseEventId(r.lastEventId.trim());
    if (id === null || (id.ms === 0 && id.seq === 0)) return null;
    if (from === null || compareIds(id, from) < 0) from = id;
  }
  return from;
}

/** The replay for one Last-Event-ID from a window, or null when it needs the whole window. */
export function place(lastEventId: string, from: EventId | null, w: ReplayWindow): Replay | null {
  if (w.state !== null) {
    const placement = placeLastEventId(lastEventId, w.state);
    return { placement, events: eventsAfter(w.events, placement.after) };
  }
  const id = parseEventId(lastEventId.trim());
  if (id === null || from === null) return null;
  if (compareIds(id, from) < 0 || compareIds(id, w.last) > 0) return null;
  return { placement: { after: id, reset: null }, events: eventsAfter(w.events, id) };
}

/** The events with an id greater than `id` (binary search; the events are in id order). */
export function eventsAfter(events: readonly FramedEvent[], id: EventId): FramedEvent[] {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareIds(events[mid]!, id) > 0) hi = mid;
    else lo = mid + 1;
  }
  return lo === 0 ? (events as FramedEvent[]).slice() : events.slice(lo);
}
