// The publisher's event data, `{"ts":<epoch ms>,"seq":<n>,"pad":"..."}`, read without JSON.parse
// (the subscriber workers see every delivery): as a string (client-library receiver) or as bytes
// (raw receiver, and the storm's `{"seq":<n>,"pad":"..."}`). Also what the receivers check besides
// the seq: the data's shape (a wrong byte) and the order of the server's event ids.

const TS_KEY = '"ts":';
const SEQ_KEY = '"seq":';

/** The number after `key` (`"<name>":`) in the data, or NaN. */
function field(data: string, key: string): number {
  const at = data.indexOf(key);
  return at < 0 ? Number.NaN : Number.parseFloat(data.slice(at + key.length, at + key.length + 27));
}

/** The publish time: performance.timeOrigin + performance.now() in the publisher, ms. */
export const publishTime = (data: string): number => field(data, TS_KEY);

/** The publisher's sequence number (loss and duplicates are counted by it, not by event ids). */
export const sequenceNumber = (data: string): number => field(data, SEQ_KEY);

const SEQ_KEY_BYTES = Buffer.from(SEQ_KEY);
const TS_KEY_BYTES = Buffer.from(TS_KEY);
const DOT = 46;

/** The digits after `key` in data[from, to) (bytes), or NaN. */
export function integerAfter(data: Buffer, key: Buffer, from = 0, to = data.length): number {
  const found = data.indexOf(key, from);
  if (found < 0) return Number.NaN;
  const at = found + key.length;
  let n = 0;
  let i = at;
  for (; i < to && i < at + 15; i++) {
    const digit = data[i]! - 48;
    if (digit < 0 || digit > 9) break;
    n = n * 10 + digit;
  }
  return i === at ? Number.NaN : n;
}

/** `<digits>[.<digits>]` after `key` in data[from, to) (bytes), or NaN. */
export function decimalAfter(data: Buffer, key: Buffer, from = 0, to = data.length): number {
  const found = data.indexOf(key, from);
  if (found < 0) return Number.NaN;
  let i = found + key.length;
  const end = Math.min(to, i + 27);
  let whole = 0;
  const start = i;
  for (; i < end; i++) {
    const digit = data[i]! - 48;
    if (digit < 0 || digit > 9) break;
    whole = whole * 10 + digit;
  }
  if (i === start) return Number.NaN;
  if (i >= end || data[i] !== DOT) return whole;
  let fraction = 0;
  let scale = 1;
  for (i++; i < end; i++) {
    const digit = data[i]! - 48;
    if (digit < 0 || digit > 9) break;
    fraction = fraction * 10 + digit;
    scale *= 10;
  }
  return whole + fraction / scale;
}

/** The sequence number in data read as bytes (the storm's receivers): the digits, or NaN. */
export const sequenceNumberIn = (data: Buffer): number => integerAfter(data, SEQ_KEY_BYTES);

/** The publish time in data read as bytes (the raw receiver): `"ts":<digits>[.<digits>]`, or NaN. */
export const publishTimeIn = (data: Buffer): number => decimalAfter(data, TS_KEY_BYTES);

/**
 * How the publisher's data starts and ends for a pad of `payloadBytes`: `{"ts":` and
 * `,"pad":"xx…x"}`. Data that does not (a wrong byte in the keys or the pad) is corrupted.
 */
export function dataShape(payloadBytes: number) {
  const head = '{"ts":';
  const tail = `,"pad":"${'x'.repeat(payloadBytes)}"}`;
  return { head, tail, headBytes: Buffer.from(head), tailBytes: Buffer.from(tail) };
}
export type DataShape = ReturnType<typeof dataShape>;

/** True when the data (a string) has the shape. */
export const intactData = (data: string, shape: DataShape): boolean =>
  data.startsWith(shape.head) && data.endsWith(shape.tail);

/** True when the data (bytes) has the shape. */
export function intactBytes(data: Buffer, shape: DataShape): boolean {
  const { headBytes: head, tailBytes: tail } = shape;
  if (data.length < head.length + tail.length) return false;
  return (
    data.compare(head, 0, head.length, 0, head.length) === 0 &&
    data.compare(tail, 0, tail.length, data.length - tail.length) === 0
  );
}

/** An event id read as a comparable pair. */
export interface IdOrder {
  ms: number;
  seq: number;
}

/**
 * Reads `id` into `into`: `<ms>-<seq>` (our server's ids) or a plain integer (the references'
 * counters: ms = n, seq = 0). False for any other id (better-sse's random ones): no order to check.
 */
export function orderOfId(id: string, into: IdOrder): boolean {
  let ms = 0;
  let seq = 0;
  let dash = -1;
  if (id.length === 0 || id.length > 40) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c === 45 && dash < 0 && i > 0 && i < id.length - 1) {
      dash = i;
      continue;
    }
    const digit = c - 48;
    if (digit < 0 || digit > 9) return false;
    if (dash < 0) ms = ms * 10 + digit;
    else seq = seq * 10 + digit;
  }
  into.ms = ms;
  into.seq = seq;
  return true;
}

export function eventData(
  ts: number,
  seq: number,
  pad: string,
): { ts: number; seq: number; pad: string } {
  return { ts, seq, pad };
}
