// Just enough of the SSE framing (WHATWG HTML "event stream interpretation") to take each event's
// id, event name and data off a body that arrives split anywhere: lines end in CRLF, LF or CR (a
// CRLF may be split between two feeds), `data:` lines join with LF, a blank line dispatches,
// comments and `retry:` are skipped. The id is the one the event's own block set (or undefined);
// an empty event name is no name (a `message`).
import { StringDecoder } from 'node:string_decoder';

export type OnSseEvent = (id: string | undefined, event: string | undefined, data: string) => void;

export class SseReader {
  private readonly decoder = new StringDecoder('utf8');
  private readonly onEvent: OnSseEvent;
  /** An unfinished line carried to the next feed. */
  private pending = '';
  /** The last feed ended in CR: a LF first in the next one belongs to it. */
  private afterCr = false;
  private started = false;
  private id: string | undefined = undefined;
  private event: string | undefined = undefined;
  private data: string | null = null;

  constructor(onEvent: OnSseEvent) {
    this.onEvent = onEvent;
  }

  feed(bytes: Buffer): void {
    this.text(this.decoder.write(bytes));
  }

  private text(chunk: string): void {
    let text = chunk;
    if (text.length === 0) return;
    if (!this.started) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let pos = this.afterCr && text.charCodeAt(0) === 10 ? 1 : 0;
    this.afterCr = false;
    if (this.pending !== '') {
      // Only the carried line is joined: the rest of the chunk is read where it is.
      const end = lineEnd(text, pos);
      if (end < 0) {
        this.pending += text.slice(pos);
        return;
      }
      const line = this.pending + text.slice(pos, end);
      this.pending = '';
      this.line(line, 0, line.length);
      pos = this.next(text, end);
    }
    this.lines(text, pos);
  }

  /** Where the line after the one ending at `end` starts (a CR last: the LF may follow). */
  private next(text: string, end: number): number {
    if (text.charCodeAt(end) !== 13) return end + 1;
    if (end + 1 === text.length) this.afterCr = true;
    return text.charCodeAt(end + 1) === 10 ? end + 2 : end + 1;
  }

  /** Every complete line of `text` from `pos`; the rest is kept for the next feed. */
  private lines(text: string, from: number): void {
    let pos = from;
    let lf = text.indexOf('\n', pos);
    // A CR is rare: search once, and again only after passing it (O(n) per feed either way).
    let cr = text.indexOf('\r', pos);
    while (pos < text.length) {
      if (lf >= 0 && lf < pos) lf = text.indexOf('\n', pos);
      if (cr >= 0 && cr < pos) cr = text.indexOf('\r', pos);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      this.line(text, pos, end);
      pos = this.next(text, end);
    }
    this.pending = pos < text.length ? text.slice(pos) : '';
  }

  /** One line, text[start, end): a blank one dispatches, others set a field. */
  private line(text: string, start: number, end: number): void {
    if (start === end) {
      this.dispatch();
      return;
    }
    if (text.charCodeAt(start) === 58) return; // ':' a comment
    const colon = text.indexOf(':', start);
    const nameEnd = colon < 0 || colon > end ? end : colon;
    let valueStart = nameEnd === end ? end : nameEnd + 1;
    if (valueStart < end && text.charCodeAt(valueStart) === 32) valueStart++;
    const field = (name: string) => nameEnd - start === name.length && text.startsWith(name, start);
    if (field('data')) {
      const value = text.slice(valueStart, end);
      this.data = this.data === null ? value : `${this.data}\n${value}`;
    } else if (field('id')) {
      const value = text.slice(valueStart, end);
      if (!value.includes('\0')) this.id = value;
    } else if (field('event')) this.event = text.slice(valueStart, end) || undefined;
  }

  private dispatch(): void {
    if (this.data !== null) this.onEvent(this.id, this.event, this.data);
    this.id = undefined;
    this.event = undefined;
    this.data = null;
  }
}

/** The first CR or LF in `text` from `pos`, or -1. */
function lineEnd(text: string, pos: number): number {
  const lf = text.indexOf('\n', pos);
  const cr = text.indexOf('\r', pos);
  return cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
}
