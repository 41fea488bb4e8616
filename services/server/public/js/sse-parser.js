// The project's SSE parsing rules (services/client/src/parser.ts) for the browser: the same
// eventsource-parser the client library uses (served by this service from its installed package
// at /vendor/eventsource-parser/), wrapped with what the WHATWG algorithm keeps per event source:
// the last event ID (it persists across events and reconnections: it is what Last-Event-ID sends),
// the default event type "message", and a bound on one buffered event. The page feeds text that a
// streaming TextDecoder made of the bytes (UTF-8, a character split across chunks joined again,
// one leading BOM dropped), so the bound counts characters here, not bytes.
import { createParser } from '/vendor/eventsource-parser/index.js';

/** Most characters one unfinished line or event may hold (the server's largest body is 16 MiB). */
export const MAX_EVENT_CHARS = 17 * 1024 * 1024;

/**
 * @param {{
 *   lastEventId?: string,
 *   maxEventChars?: number,
 *   onEvent: (e: {id: string, event: string, data: string}) => void,
 *   onRetry?: (ms: number) => void,
 *   onTooLarge?: (limit: number) => void,
 * }} options
 */
export function createEventParser(options) {
  const limit = options.maxEventChars ?? MAX_EVENT_CHARS;
  let lastEventId = options.lastEventId ?? '';
  let overflowed = false;
  const tooLarge = () => {
    if (overflowed) return;
    overflowed = true;
    options.onTooLarge?.(limit);
  };
  const parser = createParser({
    maxBufferSize: limit,
    onId(id) {
      // Every completed block with a valid id field, before its event: the last event ID buffer.
      lastEventId = id;
    },
    onEvent(message) {
      options.onEvent({ id: lastEventId, event: message.event ?? 'message', data: message.data });
    },
    onRetry: options.onRetry,
    onError(error) {
      if (error.type === 'max-buffer-size-exceeded') tooLarge();
      // invalid-retry and unknown-field: the spec says to ignore the field.
    },
  });
  return {
    /** Feeds decoded text of the current connection. */
    feed(text) {
      if (overflowed || text.length === 0) return;
      try {
        parser.feed(text);
      } catch {
        tooLarge(); // after an overflow the parser refuses input until reset()
      }
    },
    /** A new connection: fresh buffers; the last event ID is kept. */
    reset() {
      parser.reset();
      overflowed = false;
    },
    get lastEventId() {
      return lastEventId;
    },
  };
}
