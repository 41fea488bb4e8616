// Long replays are written as the socket drains, one page at a time, never all at once: a replay
// storm (thousands of resumers of a megabyte of history each) would otherwise block the event
// loop for seconds and push gigabytes into process and kernel buffers, whether or not the clients
// read. Every stream with replay left takes turns (round robin) in setImmediate ticks of at most
// TICK_BUDGET_MS, so live fan-out flushes run between them; a page is written only when the
// previous one left the process (plus what is below the stream's high-water mark: 'drain' comes
// only after a write that went past it), and a client that stops reading is cut by the stall rule.
import type { FramedEvent } from '../broker/broker.ts';
import type { SseConnection } from './connection.ts';
import { type ImageHold, imagePage } from './replay-image.ts';

/** Bytes of events in one replay write (the first page also goes out with the headers). */
export const REPLAY_PAGE_BYTES = 64 * 1024;
const TICK_BUDGET_MS = 5;

/**
 * The next page of `events` from `from`: at least one event, then up to maxBytes in all. Where a
 * shared image covers the events (replay-image.ts) the page is one slice of it.
 */
export function nextPage(
  events: readonly FramedEvent[],
  from: number,
  maxBytes: number,
  hold: ImageHold | null = null,
): { parts: Buffer[]; bytes: number; next: number } {
  if (hold !== null && from < hold.covers) {
    const { part, next } = imagePage(hold, from, maxBytes);
    return { parts: [part], bytes: part.length, next };
  }
  const parts: Buffer[] = [];
  let bytes = 0;
  let i = from;
  while (i < events.length) {
    const payload = events[i]!.payload;
    if (parts.length > 0 && bytes + payload.length > maxBytes) break;
    parts.push(payload);
    bytes += payload.length;
    i++;
  }
  return { parts, bytes, next: i };
}

/** A page a pumped stream wrote: events and SSE bytes, and whether its replay is now out. */
export interface PageWritten {
  events: number;
  bytes: number;
  done: boolean;
}

/** A stream with replay left to write (a channel subscription, a several-channel stream). */
export interface Pumped {
  readonly conn: SseConnection;
  /** Writes the next page of at most about `maxBytes`; null when the write cut the stream. */
  writePage(maxBytes: number): PageWritten | null;
  /** Puts the stream back in the pump when its socket drains (set by the pump when needed). */
  onDrain: (() => void) | null;
}

export interface PumpHooks {
  /** A page was written: events and bytes (for the metrics). */
  written(events: number, bytes: number): void;
  /** The stream's replay is all written. */
  done(stream: Pumped): void;
}

export class ReplayPump {
  private readonly hooks: PumpHooks;
  private ready: Pumped[] = [];
  private scheduled = false;

  constructor(hooks: PumpHooks) {
    this.hooks = hooks;
  }

  /** Gives the stream turns until its replay is written. */
  add(stream: Pumped): void {
    this.ready.push(stream);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(pumpTick, this);
    }
  }

  run(): void {
    this.scheduled = false;
    const turns = this.ready;
    this.ready = [];
    const deadline = performance.now() + TICK_BUDGET_MS;
    let i = 0;
    for (; i < turns.length && performance.now() < deadline; i++) this.turn(turns[i]!);
    // Whoever did not get a turn goes first next tick.
    if (i < turns.length) this.ready = turns.slice(i).concat(this.ready);
    if (this.ready.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(pumpTick, this);
    }
  }

  /** One page for one stream; then again next turn, on drain, or done. */
  private turn(stream: Pumped): void {
    const conn = stream.conn;
    if (conn.ended) return;
    const page = stream.writePage(Math.min(REPLAY_PAGE_BYTES, conn.maxBufferedBytes));
    if (page === null) return; // cut: the close path forgets it
    this.hooks.written(page.events, page.bytes);
    if (page.done) {
      stream.onDrain = null;
      this.hooks.done(stream);
    } else if (conn.transport.needsDrain()) {
      stream.onDrain ??= () => this.add(stream);
      conn.transport.drainSource().once('drain', stream.onDrain);
    } else {
      this.ready.push(stream);
    }
  }
}

function pumpTick(pump: ReplayPump): void {
  pump.run();
}
