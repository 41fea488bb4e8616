// A bound on JSON nesting, checked on the raw bytes before JSON.parse: a body nested thousands
// deep is refused with a 400 instead of reaching code that recurses over it (JSON.stringify,
// the broker) and failing there with a RangeError.
/** Deepest nesting of objects and arrays a request body may have. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** The deepest nesting of `{`/`[` outside strings in `buf`, stopping once it passes `limit`. */
export function jsonDepth(buf: Uint8Array, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return max;
}

/**
 * A body-parser `verify` hook: throws for a body nested deeper than MAX_JSON_DEPTH (type
 * `json.too_deep`, status 400; body-parser passes it on to the error handler).
 */
export function verifyJsonDepth(_req: unknown, _res: unknown, buf: Buffer): void {
  if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw Object.assign(new Error(`the body is nested deeper than ${MAX_JSON_DEPTH} levels`), {
      type: 'json.too_deep',
      status: 400,
    });
  }
}
