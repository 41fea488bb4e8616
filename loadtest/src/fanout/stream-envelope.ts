// What the fan-out receivers read of a several-channel stream (GET /sse/streams?channel=...,
// `--channels-per-stream N` > 1): each event's data is the envelope
// `{"channel":"<name>","data":"<the channel's own data as a JSON string>"}` and its id the stream's
// cursor of every channel's position. The harness names the channels `<prefix><i>` (rig.ts:
// `<channel>.0` .. `<channel>.<N-1>`).
// - The raw receiver reads the envelope as bytes, without JSON.parse: the channel's index from the
//   digits after `{"channel":"<prefix>`, then `seq` and `ts` inside the inner JSON string, where
//   the publisher's quotes arrive escaped (`{\"ts\":…,\"seq\":…,\"pad\":\"xx…\"}`), and the
//   data's shape checked in its escaped form. (The client library unwraps the envelope itself.)
// - Both read each event's own channel position off the cursor (`c1` + base64url of a varint
//   base ms, then per channel: 4-byte FNV-1a hash of its name, zigzag varint ms - base, varint
//   seq; services/server/src/wire/stream-cursor.ts is the writer) to check that channel's order.
import { type DataShape, decimalAfter, type IdOrder, integerAfter } from './event-data.ts';

/** The channel names of a several-channel stream of the harness: `<prefix>0` .. `<prefix><n-1>`. */
export function streamChannelNames(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** FNV-1a, 32 bits, over the name's UTF-16 code units: how the cursor names a channel. */
export function channelHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const CURSOR_PREFIX = 'c1';
/** Longest cursor read (the server accepts 4096 characters back). */
const MAX_CURSOR_CHARS = 4096;

/**
 * Reads one channel's position off stream cursors, into a buffer kept between calls (no
 * allocation per event beyond the substring).
 */
export class CursorReader {
  private readonly bytes = Buffer.alloc(MAX_CURSOR_CHARS);
  private pos = 0;
  private end = 0;

  /** The position of the channel whose hash is `hash` in `cursor`, into `into`; false: none. */
  read(cursor: string, hash: number, into: IdOrder): boolean {
    if (cursor.length > MAX_CURSOR_CHARS || !cursor.startsWith(CURSOR_PREFIX)) return false;
    this.end = this.bytes.write(cursor.slice(CURSOR_PREFIX.length), 0, 'base64url');
    this.pos = 0;
    const base = this.varint();
    if (base < 0) return false;
    while (this.pos + 4 <= this.end) {
      const h = this.bytes.readUInt32BE(this.pos);
      this.pos += 4;
      const ms = this.varint();
      const seq = this.varint();
      if (ms < 0 || seq < 0) return false;
      if (h === hash) {
        into.ms = base + (ms % 2 === 1 ? -(ms + 1) / 2 : ms / 2);
        into.seq = seq;
        return true;
      }
    }
    return false;
  }

  /** A varint at the read position, or -1 when it runs past the end (or 8 bytes). */
  private varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8 && this.pos < this.end; i++) {
      const b = this.bytes[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    return -1;
  }
}

const escaped = (text: string) => Buffer.from(JSON.stringify(text).slice(1, -1));
const MID = Buffer.from('","data":"');
const END = Buffer.from('"}');
const TS_KEY = escaped('"ts":');
const SEQ_KEY = escaped('"seq":');

/**
 * Reads envelopes as bytes (the raw receiver). After read(): `channel` (the index, or -1: not an
 * envelope of these channels), `seq`, `ts` (NaN when missing) and `intact` (the inner data has
 * the publisher's shape; true while no shape is known).
 */
export class EnvelopeReader {
  private readonly head: Buffer;
  private readonly count: number;
  private shapeOf: DataShape | null = null;
  private innerHead = Buffer.alloc(0);
  private innerTail = Buffer.alloc(0);
  channel = -1;
  seq = Number.NaN;
  ts = Number.NaN;
  intact = false;

  constructor(prefix: string, count: number) {
    this.head = Buffer.from(`{"channel":${JSON.stringify(prefix).slice(0, -1)}`);
    this.count = count;
  }

  /** Reads `data` (one event's data); false when it is no envelope of these channels. */
  read(data: Buffer, shape: DataShape | null): boolean {
    this.channel = -1;
    this.seq = this.ts = Number.NaN;
    this.intact = false;
    const head = this.head;
    if (data.length < head.length + MID.length + END.length + 1) return false;
    if (data.compare(head, 0, head.length, 0, head.length) !== 0) return false;
    let i = head.length;
    let index = 0;
    // The index: decimal digits, no leading zero (names are `<prefix><i>`), below `count`.
    for (; i < data.length && i < head.length + 3; i++) {
      const digit = data[i]! - 48;
      if (digit < 0 || digit > 9) break;
      if (i > head.length && index === 0) return false;
      index = index * 10 + digit;
    }
    if (i === head.length || index >= this.count || i + MID.length > data.length) return false;
    if (data.compare(MID, 0, MID.length, i, i + MID.length) !== 0) return false;
    const from = i + MID.length;
    const to = data.length - END.length;
    if (to < from || data.compare(END, 0, END.length, to) !== 0) return false;
    this.channel = index;
    this.seq = integerAfter(data, SEQ_KEY, from, to);
    this.ts = decimalAfter(data, TS_KEY, from, to);
    this.intact = shape === null || this.intactInner(data, from, to, shape);
    return true;
  }

  /** data[from, to) is the shape's head and tail, escaped as a JSON string's content. */
  private intactInner(data: Buffer, from: number, to: number, shape: DataShape): boolean {
    if (this.shapeOf !== shape) {
      this.shapeOf = shape;
      this.innerHead = escaped(shape.head);
      this.innerTail = escaped(shape.tail);
    }
    const { innerHead: h, innerTail: t } = this;
    return (
      to - from >= h.length + t.length &&
      data.compare(h, 0, h.length, from, from + h.length) === 0 &&
      data.compare(t, 0, t.length, to - t.length, to) === 0
    );
  }
}
