// Long replays are written as the socket drains, one page at a time, never all at once: a replay
// storm (thousands of resumers of a megabyte of history each) would otherwise block the event
// loop for seconds and push gigabytes into process and kernel buffers, whether or not the clients
// read. Every subscriber with replay left takes turns (round robin) in setImmediate ticks of at
// most TICK_BUDGET_MS, so live fan-out flushes run between them; a page is written only when the
// previous one left the process (its socket drained), so a subscriber holds at most one page in
// the process (plus what is below the stream's high-water mark: 'drain' comes only after a write
// that went past it), and a client that stops reading is cut by the registry's stall rule.
import type { FramedEvent } from '../broker/broker.ts';
import type { Subscription } from './subscription.ts';

/** Bytes of events in one replay write (the first page also goes out with the headers). */
export const REPLAY_PAGE_BYTES = 64 * 1024;
const TICK_BUDGET_MS = 5;

/** The next page of `events` from `from`: at least one event, then up to maxBytes in all. */
export function nextPage(
  events: readonly FramedEvent[],
  from: number,
  maxBytes: number,
): { parts: Buffer[]; bytes: number; next: number } {
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

export interface PumpHooks {
  /** A page was written: events and bytes (for the metrics). */
  written(events: number, bytes: number): void;
  /** The subscription's replay is all written (or its stream is gone). */
  done(sub: Subscription): void;
}

export class ReplayPump {
  private readonly hooks: PumpHooks;
  private ready: Subscription[] = [];
  private scheduled = false;

  constructor(hooks: PumpHooks) {
    this.hooks = hooks;
  }

  /** Gives the subscription turns until its backlog is written. */
  add(sub: Subscription): void {
    this.ready.push(sub);
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

  /** One page for one subscriber; then again next turn, on drain, or done. */
  private turn(sub: Subscription): void {
    const backlog = sub.backlog;
    const conn = sub.conn;
    if (backlog === null || conn.ended) return;
    const max = Math.min(REPLAY_PAGE_BYTES, conn.maxBufferedBytes);
    const page = nextPage(backlog, sub.backlogNext, max);
    if (!conn.sendParts(page.parts)) return; // cut: the close path forgets it
    sub.backlogNext = page.next;
    sub.cursor = backlog[page.next - 1]!;
    this.hooks.written(page.parts.length, page.bytes);
    if (page.next >= backlog.length) {
      sub.backlog = null;
      sub.onDrain = null;
      this.hooks.done(sub);
    } else if (conn.transport.needsDrain()) {
      sub.onDrain ??= () => this.add(sub);
      conn.transport.drainSource().once('drain', sub.onDrain);
    } else {
      this.ready.push(sub);
    }
  }
}

function pumpTick(pump: ReplayPump): void {
  pump.run();
}
