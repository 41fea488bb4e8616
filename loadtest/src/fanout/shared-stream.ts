// The raw receiver's shared stream, so that it is not the bottleneck at 10,000 subscribers: every
// subscriber of one URL gets the same SSE bytes (the same events, framed once by the server),
// only cut into reads differently and starting at a different event. A worker keeps those bytes
// once (SharedStream), parsed once into events (seq, ts, data, the last event id after each), and
// a subscriber that joined it (SharedCursor) checks each read by comparing it with the shared
// bytes at its own position (memcmp), then hands on every event whose end it passed, as if it had
// parsed them itself. Bytes past the shared end are appended by whoever has them first (and parsed
// then). A subscriber joins from its own reader (sse-reader.ts) at a read boundary where that reader
// is idle right after an event the shared stream holds (by that event's id), so both readers are in
// the same state at the same bytes, and identical bytes from identical states are identical events.
// At the first read that differs it goes back to its own reader, fed the bytes of the unfinished
// event first: gaps, duplicates, swaps and wrong bytes are then counted by the ledger exactly as
// before (they reach it either way: the ledger, not the parse, judges the events).
import { SseReader } from '../raw/sse-reader.ts';

/** Shared bytes kept at most (then no one joins or appends any more: each reads on its own). */
const MAX_SHARED_BYTES = 64 * 1024 * 1024;

/** An event of the shared stream. */
export interface SharedEvent {
  /** Where its bytes end (after the blank line), in the shared stream's offsets. */
  readonly end: number;
  /** The event name when it is not a message (null: a message). */
  readonly name: string | null;
  /** Its data (a copy). */
  readonly data: Buffer;
  /** Its own id field (undefined: it had none). */
  readonly id: string | undefined;
  /** The stream's last event id after it (its own id, or the one before). */
  readonly lastId: string | undefined;
  /** What the receiver read off the data, kept for every subscriber (filled by the first). */
  read?: { seq: number; ts: number; shape: unknown; intact: boolean };
}

export class SharedStream {
  private readonly maxBytes: number;
  private bytes = Buffer.allocUnsafe(64 * 1024);
  /** Bytes held (offset 0: the end of the event the stream was founded after). */
  length = 0;
  readonly events: SharedEvent[] = [];
  /** Every event's index by its id (the stream's last event id right after it). */
  private readonly byId = new Map<string, number>();
  private startId: string | undefined = undefined;
  private parser: SseReader | null = null;
  private lastId: string | undefined = undefined;
  private dispatched: { name: string | null; data: Buffer; id: string | undefined } | null = null;
  /** Past maxBytes: no more joins or appends. */
  closed = false;

  constructor(maxBytes = MAX_SHARED_BYTES) {
    this.maxBytes = maxBytes;
  }

  /**
   * Where a subscriber whose reader is idle right after the event with `id` joins: that event's
   * end and the index of the next event; null when the stream does not hold it. The first
   * subscriber to ask founds the stream there.
   */
  joinAfter(id: string): { pos: number; next: number } | null {
    if (this.closed) return null;
    if (this.parser === null) {
      this.parser = new SseReader((eventId, event, data) => {
        if (eventId !== undefined) this.lastId = eventId;
        const name = event === undefined || event === 'message' ? null : event;
        this.dispatched = { name, data: Buffer.from(data), id: eventId };
      });
      this.startId = id;
      this.lastId = id;
    }
    if (id === this.startId) return { pos: 0, next: 0 };
    const i = this.byId.get(id);
    return i === undefined ? null : { pos: this.events[i]!.end, next: i + 1 };
  }

  /** True when `read[from, from + n)` are the shared bytes at `pos`. */
  matches(read: Buffer, from: number, n: number, pos: number): boolean {
    return read.subarray(from, from + n).equals(this.bytes.subarray(pos, pos + n));
  }

  /** The shared bytes [from, to) (a view). */
  slice(from: number, to: number): Buffer {
    return this.bytes.subarray(from, to);
  }

  /** Bytes past the end, from a subscriber at the end: kept and parsed. False once closed. */
  append(more: Buffer): boolean {
    if (this.closed || this.parser === null) return false;
    if (this.length + more.length > this.maxBytes) {
      this.closed = true;
      return false;
    }
    if (this.length + more.length > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.bytes.length, this.length + more.length));
      this.bytes.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    const start = this.length;
    more.copy(this.bytes, start);
    this.length += more.length;
    // Line by line, so that each event's end is known to the byte.
    this.parser.feedByLine(this.bytes.subarray(start, this.length), (end) => {
      const d = this.dispatched!;
      this.dispatched = null;
      const lastId = this.lastId;
      if (lastId !== undefined) this.byId.set(lastId, this.events.length);
      this.events.push({ end: start + end, name: d.name, data: d.data, id: d.id, lastId });
      return true;
    });
    return true;
  }
}

/** Where one subscriber is in the shared stream, and what it has handed on. */
export class SharedCursor {
  private readonly stream: SharedStream;
  /** Its position in the shared bytes; -1: not joined (its own reader reads). */
  private pos = -1;
  /** The next event to hand on, and where the last one handed on ended. */
  private next = 0;
  private lastEnd = 0;
  /** Bytes checked by comparison with the shared ones (its own appended bytes not counted). */
  compared = 0;

  constructor(stream: SharedStream) {
    this.stream = stream;
  }

  get joined(): boolean {
    return this.pos >= 0;
  }

  /**
   * One read of a subscriber that also has its own `reader`. While joined, the read is compared
   * with the shared bytes and every event it completes goes to `deliver`; from the first byte that
   * differs the reader reads (the unfinished event's bytes first). Not joined, the reader reads it,
   * and then the cursor joins if it may: `lastId()` is the subscriber's last event id after the
   * read (undefined: it does not join now).
   */
  take(
    bytes: Buffer,
    reader: SseReader,
    deliver: (e: SharedEvent) => void,
    lastId: () => string | undefined,
  ): void {
    if (this.pos >= 0) {
      const own = this.read(bytes, deliver);
      if (own !== null) for (const b of own) reader.feed(b);
      return;
    }
    reader.feed(bytes);
    this.tryJoin(reader.idle, lastId());
  }

  /** Joins when its own reader is idle right after the event `lastId` (see SharedStream). */
  private tryJoin(readerIdle: boolean, lastId: string | undefined): void {
    if (!readerIdle || lastId === undefined) return;
    const at = this.stream.joinAfter(lastId);
    if (at === null) return;
    this.pos = at.pos;
    this.lastEnd = at.pos;
    this.next = at.next;
  }

  /**
   * A read while joined: compared, appended past the end, and every event it completes handed to
   * `deliver`. When it differs (or the stream closed), the cursor leaves and returns the bytes its
   * own reader must read now: the unfinished event's start, then the read. Null when it stays.
   */
  private read(bytes: Buffer, deliver: (e: SharedEvent) => void): Buffer[] | null {
    const s = this.stream;
    const n = Math.min(bytes.length, s.length - this.pos);
    if (n > 0 && !s.matches(bytes, 0, n, this.pos)) return this.leave(bytes);
    this.pos += n;
    this.compared += n;
    this.handOn(deliver);
    if (n < bytes.length) {
      if (!s.append(bytes.subarray(n))) return this.leave(bytes.subarray(n));
      this.pos = s.length;
      this.handOn(deliver);
    }
    return null;
  }

  private handOn(deliver: (e: SharedEvent) => void): void {
    const events = this.stream.events;
    while (this.next < events.length && events[this.next]!.end <= this.pos) {
      const e = events[this.next++]!;
      this.lastEnd = e.end;
      deliver(e);
    }
  }

  private leave(rest: Buffer): Buffer[] {
    const unfinished = this.stream.slice(this.lastEnd, this.pos);
    this.pos = -1;
    return [unfinished, rest];
  }
}
