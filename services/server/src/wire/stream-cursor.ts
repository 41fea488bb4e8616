// The resume cursor of a several-channel stream (/sse/streams): every event's `id:` carries the
// position of EVERY channel of the stream, so Last-Event-ID after any cut continues each channel
// exactly where it stopped. Opaque to clients, versioned, compact:
//
//   "c1" + base64url( varint base-ms, then per channel: 4-byte FNV-1a hash of its name,
//                     zigzag varint (ms - base), varint seq )
//
// A channel's position is its last id (`<ms>-<seq>`; 0-0 when it has seen none). The base is the
// stream's start time, so a position near it costs 2-4 bytes of ms; a whole entry is 6-9 bytes
// (8-12 characters): 32 channels fit in about 350 characters, well within the 16 KiB header
// bound. Channels are found by hash, so channels added to or dropped from the URL between
// reconnects work: a new one starts live, a dropped one is ignored.
import { type EventId, formatEventId } from '../broker/event-id.ts';

export const CURSOR_PREFIX = 'c1';
/** Longest cursor accepted (a Last-Event-ID longer than this is malformed). */
export const MAX_CURSOR_CHARS = 4096;

/** FNV-1a, 32 bits, over the name's UTF-16 code units (channel names are ASCII). */
export function channelHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function pushVarint(out: number[], value: number): void {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** Zigzag for safe integers (no 32-bit overflow): 0, -1, 1, -2 ... -> 0, 1, 2, 3 ... */
const zigzag = (v: number) => (v < 0 ? -2 * v - 1 : 2 * v);
const unzigzag = (v: number) => (v % 2 === 1 ? -(v + 1) / 2 : v / 2);

/** One channel's encoded entry (hash, ms, seq), relative to the cursor's base. */
export function encodeEntry(hash: number, id: EventId, base: number): number[] {
  const out = [(hash >>> 24) & 0xff, (hash >>> 16) & 0xff, (hash >>> 8) & 0xff, hash & 0xff];
  pushVarint(out, zigzag(id.ms - base));
  pushVarint(out, id.seq);
  return out;
}

/** The cursor text from a base and the channels' encoded entries (see encodeEntry). */
export function cursorText(base: number, entries: readonly (readonly number[])[]): string {
  const bytes: number[] = [];
  pushVarint(bytes, base);
  for (const e of entries) for (const b of e) bytes.push(b);
  return CURSOR_PREFIX + Buffer.from(bytes).toString('base64url');
}

/** The positions in a cursor by channel hash, or null when it is not a cursor of this version. */
export function decodeCursor(text: string): Map<number, EventId> | null {
  if (text.length > MAX_CURSOR_CHARS || !text.startsWith(CURSOR_PREFIX)) return null;
  const body = text.slice(CURSOR_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(body)) return null;
  const bytes = Buffer.from(body, 'base64url');
  let pos = 0;
  const varint = (): number | null => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= bytes.length) return null;
      const b = bytes[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return Number.isSafeInteger(value) ? value : null;
      scale *= 0x80;
    }
    return null;
  };
  const base = varint();
  if (base === null) return null;
  const out = new Map<number, EventId>();
  while (pos < bytes.length) {
    if (pos + 4 > bytes.length) return null;
    const hash = bytes.readUInt32BE(pos);
    pos += 4;
    const ms = varint();
    const seq = varint();
    if (ms === null || seq === null) return null;
    const at = base + unzigzag(ms);
    if (!Number.isSafeInteger(at) || at < 0) return null;
    out.set(hash, { ms: at, seq });
  }
  return out;
}

/**
 * Where each of `names` resumes from a Last-Event-ID (null: none given): its position as
 * `<ms>-<seq>` (channels the cursor does not hold start live; `0-0` starts every channel from the
 * oldest event held), or `malformed` when the text is not a cursor of this version.
 */
export function resumePositions(
  names: readonly string[],
  lastEventId: string | null,
): { positions: Map<string, string>; malformed: boolean } {
  const positions = new Map<string, string>();
  if (lastEventId === null) return { positions, malformed: false };
  // 0-0, "nothing seen yet" on a channel, means the same for every channel of the stream.
  if (lastEventId.trim() === '0-0') {
    for (const name of names) positions.set(name, '0-0');
    return { positions, malformed: false };
  }
  const cursor = decodeCursor(lastEventId.trim());
  if (cursor === null) return { positions, malformed: true };
  for (const name of names) {
    const at = cursor.get(channelHash(name));
    if (at !== undefined) positions.set(name, formatEventId(at));
  }
  return { positions, malformed: false };
}
