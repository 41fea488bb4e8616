// The publisher's event data, `{"ts":<epoch ms>,"seq":<n>,"pad":"..."}`, read without JSON.parse
// (the subscriber workers see every delivery); the storm's `{"seq":<n>,"pad":"..."}` as bytes.

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

/** The sequence number in data read as bytes (the storm's receivers): the digits, or NaN. */
export function sequenceNumberIn(data: Buffer): number {
  const at = data.indexOf(SEQ_KEY_BYTES);
  if (at < 0) return Number.NaN;
  let n = 0;
  let i = at + SEQ_KEY_BYTES.length;
  for (; i < data.length && i < at + SEQ_KEY_BYTES.length + 15; i++) {
    const digit = data[i]! - 48;
    if (digit < 0 || digit > 9) break;
    n = n * 10 + digit;
  }
  return i === at + SEQ_KEY_BYTES.length ? Number.NaN : n;
}

export function eventData(
  ts: number,
  seq: number,
  pad: string,
): { ts: number; seq: number; pad: string } {
  return { ts, seq, pad };
}
