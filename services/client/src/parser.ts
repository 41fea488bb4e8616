// Bytes -> spec events. eventsource-parser splits lines (CR, LF, CRLF, even split across chunks)
// and fields, and strips one leading BOM per connection. It is fed the bytes as latin1 text (one
// character per byte: line ends and field names are ASCII, and UTF-8 never uses ASCII bytes inside
// a multi-byte character), so its buffer bound counts bytes and a character split across chunks
// is simply joined again; the values of a finished event are then decoded as UTF-8 (invalid
// sequences become U+FFFD). This wrapper adds what the WHATWG algorithm keeps per event source:
// the last event ID (it persists across events and reconnections), the default event type
// "message", and the bound on buffered event size.
import { isAscii } from 'node:buffer';
import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser';

/** One dispatched event, as a browser's MessageEvent would expose it. */
export interface SseEvent {
  /** The last event ID after this event (the stream's most recent `id:` field, "" if none). */
  id: string;
  /** The event type: the `event:` field, "message" by default. */
  event: string;
  /** The data lines joined with "\n". */
  data: string;
  /** Several-channel streams (/sse/streams): the channel the event is of (null: the stream's). */
  channel?: string | null;
}

export interface EventParserOptions {
  /** Most UTF-8 bytes the parser may buffer for one unfinished line or event (default 1 MiB). */
  maxEventBytes?: number;
  /** Last event ID before the first connection (e.g. from --last-event-id). */
  lastEventId?: string;
  onEvent(event: SseEvent): void;
  /** The server's `retry:` field (digits only; other values are ignored). */
  onRetry?(ms: number): void;
  /** The buffered event exceeded maxEventBytes; the parser ignores input until the next reset. */
  onTooLarge?(limit: number): void;
}

export interface EventParser {
  /** Feeds raw bytes of the current connection. */
  feed(chunk: Uint8Array): void;
  /** Starts a new connection: fresh BOM check and buffers; the last event ID is kept. */
  reset(): void;
  /** The event source's last event ID (sent as Last-Event-ID when reconnecting). */
  readonly lastEventId: string;
}

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

/** Any byte outside ASCII, in latin1 text. */
const NON_ASCII = /[\x80-\xff]/;

/** Latin1 text (one character per byte) read as the UTF-8 it holds. */
function utf8(latin1: string): string {
  return NON_ASCII.test(latin1) ? Buffer.from(latin1, 'latin1').toString('utf8') : latin1;
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
}

export function createEventParser(options: EventParserOptions): EventParser {
  const limit = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const { onEvent, onRetry, onTooLarge } = options;
  let lastEventId = options.lastEventId ?? '';
  let overflowed = false;
  /** Every byte of this connection so far was ASCII: nothing to decode (the common case). */
  let ascii = true;

  const parser = createParser({
    maxBufferSize: limit,
    onId(id: string) {
      // Called for every completed block that had a valid id field (NULL-carrying ids are
      // already ignored), before its event: the spec's "last event ID buffer".
      lastEventId = ascii ? id : utf8(id);
    },
    onEvent(message: EventSourceMessage) {
      // The parser hands over a fresh object per event: complete it in place, no extra allocation.
      const event = message as SseEvent;
      event.id = lastEventId;
      if (message.event === undefined) event.event = 'message';
      else if (!ascii) event.event = utf8(message.event);
      if (!ascii) event.data = utf8(message.data);
      onEvent(event);
    },
    onRetry,
    onError(error: ParseError) {
      if (error.type === 'max-buffer-size-exceeded') {
        overflowed = true;
        onTooLarge?.(limit);
      }
      // invalid-retry and unknown-field: the spec says to ignore the field.
    },
  });

  return {
    feed(chunk: Uint8Array): void {
      if (overflowed || chunk.length === 0) return;
      const bytes = asBuffer(chunk);
      if (ascii && !isAscii(bytes)) ascii = false;
      parser.feed(bytes.toString('latin1'));
    },
    reset(): void {
      parser.reset();
      overflowed = false;
      ascii = true;
    },
    get lastEventId() {
      return lastEventId;
    },
  };
}
