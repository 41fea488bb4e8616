// Just enough of the SSE framing (WHATWG HTML "event stream interpretation") to take each event's
// id, event name and data off a body that arrives split anywhere: lines end in CRLF, LF or CR (a
// CRLF may be split between two feeds), `data:` lines join with LF, a blank line dispatches,
// `retry:` (ASCII digits only, as the spec says) is handed to an optional callback, comments and
// other fields are skipped. The id is the one the event's own block set (or undefined); an empty
// event name is no name (a `message`).
// It reads bytes, not text: every delimiter is ASCII, so UTF-8 never needs decoding to find them,
// and the data is handed on as bytes (the storm compares them with what was published): a storm
// moves gigabytes, and decoding them all into strings cost the receiver more than the reading.
// The fed bytes may be a buffer the caller reuses for its next read (raw/reading-socket.ts): what
// the reader carries past a feed (an unfinished line, the data of an event not yet dispatched) is
// copied before the feed returns; everything else is read where it is.

/** `data` is a view of the fed bytes, valid only during the call (copy it to keep it). */
export type OnSseEvent = (id: string | undefined, event: string | undefined, data: Buffer) => void;
/** The server's reconnection time (a `retry:` field of ASCII digits), in ms. */
export type OnSseRetry = (ms: number) => void;

const LF = 10;
const CR = 13;
const COLON = 58;
const SPACE = 32;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const DATA = Buffer.from('data');
const ID = Buffer.from('id');
const EVENT = Buffer.from('event');
const RETRY = Buffer.from('retry');
const NEWLINE = Buffer.from('\n');
/** The longest field name read ('event', 'retry') plus its colon. */
const NAME_SCAN = EVENT.length + 1;

/** True when bytes[start, end) are `name`. */
function named(bytes: Buffer, start: number, end: number, name: Buffer): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (bytes[start + i] !== name[i]) return false;
  return true;
}

export class SseReader {
  private readonly onEvent: OnSseEvent;
  private readonly onRetry: OnSseRetry | undefined;
  /** An unfinished line carried to the next feed. */
  private pending: Buffer | null = null;
  /** The last feed ended in CR: a LF first in the next one belongs to it. */
  private afterCr = false;
  private started = false;
  private id: string | undefined = undefined;
  private event: string | undefined = undefined;
  private data: Buffer | null = null;
  /** `data` is a view of the bytes being fed (copied if the event is carried past the feed). */
  private dataIsView = false;
  /** Events handed on so far. */
  private dispatched = 0;

  constructor(onEvent: OnSseEvent, onRetry?: OnSseRetry) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
  }

  /** Nothing carried to the next feed: no unfinished line and no field of an undispatched event. */
  get idle(): boolean {
    return (
      this.pending === null &&
      !this.afterCr &&
      this.data === null &&
      this.id === undefined &&
      this.event === undefined
    );
  }

  /**
   * Feeds `bytes` a line at a time, calling `ended(end)` after each line that completed an event,
   * with where in `bytes` that event's bytes end; stops early when `ended` returns false. For
   * whoever must know each event's bytes (the receivers' references, shared streams).
   */
  feedByLine(bytes: Buffer, ended: (end: number) => boolean): void {
    let pos = 0;
    while (pos < bytes.length) {
      const lf = bytes.indexOf(LF, pos);
      const end = lf < 0 ? bytes.length : lf + 1;
      const before = this.dispatched;
      this.feed(bytes.subarray(pos, end));
      pos = end;
      if (this.dispatched !== before && !ended(pos)) return;
    }
  }

  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    let pos = 0;
    if (!this.started) {
      this.started = true;
      if (chunk.subarray(0, 3).equals(BOM)) pos = 3;
    }
    if (this.afterCr && chunk[pos] === LF) pos++;
    this.afterCr = false;
    if (this.pending !== null) {
      // Only the carried line is joined: the rest of the chunk is read where it is.
      const end = lineEnd(chunk, pos);
      if (end < 0) {
        this.pending = Buffer.concat([this.pending, chunk.subarray(pos)]);
        return;
      }
      const line = Buffer.concat([this.pending, chunk.subarray(pos, end)]);
      this.pending = null;
      this.line(line, 0, line.length);
      pos = this.next(chunk, end);
    }
    this.lines(chunk, pos);
    if (this.dataIsView && this.data !== null) this.data = Buffer.from(this.data);
    this.dataIsView = false;
  }

  /** Where the line after the one ending at `end` starts (a CR last: the LF may follow). */
  private next(bytes: Buffer, end: number): number {
    if (bytes[end] !== CR) return end + 1;
    if (end + 1 === bytes.length) this.afterCr = true;
    return bytes[end + 1] === LF ? end + 2 : end + 1;
  }

  /** Every complete line of `bytes` from `from`; the rest is kept for the next feed. */
  private lines(bytes: Buffer, from: number): void {
    let pos = from;
    let lf = bytes.indexOf(LF, pos);
    // A CR is rare: search once, and again only after passing it (O(n) per feed either way).
    let cr = bytes.indexOf(CR, pos);
    while (pos < bytes.length) {
      if (lf >= 0 && lf < pos) lf = bytes.indexOf(LF, pos);
      if (cr >= 0 && cr < pos) cr = bytes.indexOf(CR, pos);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      this.line(bytes, pos, end);
      pos = this.next(bytes, end);
    }
    // A copy: the fed bytes may be reused for the next read.
    this.pending = pos < bytes.length ? Buffer.from(bytes.subarray(pos)) : null;
  }

  /** One line, bytes[start, end): a blank one dispatches, others may set a field. */
  private line(bytes: Buffer, start: number, end: number): void {
    if (start === end) {
      this.dispatch();
      return;
    }
    // The field name ends at the first colon; only names up to 'event' matter.
    let nameEnd = -1;
    for (let i = start; i < end && i < start + NAME_SCAN; i++) {
      if (bytes[i] === COLON) {
        nameEnd = i;
        break;
      }
    }
    if (nameEnd < 0 && end - start < NAME_SCAN) nameEnd = end;
    if (nameEnd <= start) return; // a comment (':' first), or a field read no further
    let valueStart = nameEnd === end ? end : nameEnd + 1;
    if (bytes[valueStart] === SPACE && valueStart < end) valueStart++;
    if (named(bytes, start, nameEnd, DATA)) {
      const value = bytes.subarray(valueStart, end);
      this.dataIsView = this.data === null;
      this.data = this.data === null ? value : Buffer.concat([this.data, NEWLINE, value]);
    } else if (named(bytes, start, nameEnd, ID)) {
      const value = bytes.subarray(valueStart, end);
      if (!value.includes(0)) this.id = value.toString('utf8');
    } else if (named(bytes, start, nameEnd, EVENT)) {
      this.event = bytes.toString('utf8', valueStart, end) || undefined;
    } else if (this.onRetry !== undefined && named(bytes, start, nameEnd, RETRY)) {
      const ms = retryValue(bytes, valueStart, end);
      if (ms >= 0) this.onRetry(ms);
    }
  }

  private dispatch(): void {
    if (this.data !== null) {
      this.dispatched++;
      this.onEvent(this.id, this.event, this.data);
    }
    this.id = undefined;
    this.event = undefined;
    this.data = null;
    this.dataIsView = false;
  }
}

/** A `retry:` value: ASCII digits only (anything else is ignored: -1). */
function retryValue(bytes: Buffer, start: number, end: number): number {
  if (start === end || end - start > 15) return -1;
  let ms = 0;
  for (let i = start; i < end; i++) {
    const digit = bytes[i]! - 48;
    if (digit < 0 || digit > 9) return -1;
    ms = ms * 10 + digit;
  }
  return ms;
}

/** The first CR or LF in `bytes` from `pos`, or -1. */
function lineEnd(bytes: Buffer, pos: number): number {
  const lf = bytes.indexOf(LF, pos);
  const cr = bytes.indexOf(CR, pos);
  return cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
}
