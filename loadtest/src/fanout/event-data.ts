// The publisher's event data, `{"ts":<epoch ms>,"seq":<n>,"pad":"..."}`, read without JSON.parse
// (the subscriber workers see every delivery).

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

export function eventData(
  ts: number,
  seq: number,
  pad: string,
): { ts: number; seq: number; pad: string } {
  return { ts, seq, pad };
}
