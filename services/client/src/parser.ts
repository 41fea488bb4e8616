// Bytes -> spec events. A streaming TextDecoder turns each connection's bytes into text (it strips
// one leading BOM and keeps multi-byte characters split across chunks intact); eventsource-parser
// splits lines (CR, LF, CRLF, even split across chunks) and fields. This wrapper adds what the
// WHATWG algorithm keeps per event source: the last event ID (it persists across events and
// reconnections), the default event type "message", and a bound on buffered event size.
import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser';

/** One dispatched event, as a browser's MessageEvent would expose it. */
export interface SseEvent {
  /** The last event ID after this event (the stream's most recent `id:` field, "" if none). */
  id: string;
  /** The event type: the `event:` field, "message" by default. */
  event: string;
  /** The data lines joined with "\n". */
  data: string;
}

export interface EventParserOptions {
  /** Most characters the parser may buffer for one unfinished line or event (default 1 MiB). */
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
  /** Starts a new connection: fresh decoder, BOM check and buffers; the last event ID is kept. */
  reset(): void;
  /** The event source's last event ID (sent as Last-Event-ID when reconnecting). */
  readonly lastEventId: string;
}

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

export function createEventParser(options: EventParserOptions): EventParser {
  const limit = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const { onEvent, onRetry, onTooLarge } = options;
  let lastEventId = options.lastEventId ?? '';
  let decoder = new TextDecoder('utf-8');
  let overflowed = false;

  const parser = createParser({
    maxBufferSize: limit,
    onId(id: string) {
      // Called for every completed block that had a valid id field (NULL-carrying ids are
      // already ignored), before its event: the spec's "last event ID buffer".
      lastEventId = id;
    },
    onEvent(message: EventSourceMessage) {
      // The parser hands over a fresh object per event: complete it in place, no extra allocation.
      const event = message as SseEvent;
      event.id = lastEventId;
      if (message.event === undefined) event.event = 'message';
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

  function start(): void {
    parser.reset();
    // The decoder already strips the one BOM the spec allows; complete the parser's own BOM check
    // with a BOM of our own so that a second U+FEFF stays data, exactly as the spec says.
    parser.feed('\uFEFF');
    decoder = new TextDecoder('utf-8');
    overflowed = false;
  }
  start();

  return {
    feed(chunk: Uint8Array): void {
      if (overflowed) return;
      const text = decoder.decode(chunk, { stream: true });
      if (text.length > 0) parser.feed(text);
    },
    reset: start,
    get lastEventId() {
      return lastEventId;
    },
  };
}
