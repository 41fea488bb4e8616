// A long replay's SSE bytes in one buffer, shared by every stream that replays the same events, so
// that a replay page is one slice of it (one write: the chunk's size line, the slice, CRLF)
// instead of one buffer per event. A page of 64 small buffers goes through node's corked
// Writable once per buffer: for 10,000 sockets x 1.1 MB that doubled the writer's CPU against one
// 64 KiB buffer per page (8.2-8.6 s against 4.2 s, loadtest/loopback-bulk-cost.ts,
// docs/PERFORMANCE.md).
// The events stay the truth: an image is keyed by its first event and a stream takes it for the
// prefix of its replay made of the very same event objects (framed once, never changed); the rest
// of its replay goes out event by event. Built by the first long replay from that event (one copy
// of its bytes), released by each stream when its replay is written or it closes, dropped with its
// last user. Bounded: at most `maxBytes` held in all; past it, replays go out event by event.
import type { FramedEvent } from '../broker/broker.ts';
import { payloadBytes } from '../broker/framed-event.ts';

export interface ReplayImage {
  /** The events whose bytes it holds, in order (the replay it was built from). */
  readonly events: readonly FramedEvent[];
  /** ends[i]: where event i's bytes end in `bytes`. */
  readonly ends: Uint32Array;
  readonly bytes: Buffer;
  /** Streams holding it. */
  users: number;
}

/** A stream's hold on an image: the image, who holds it, and how many events of its replay it covers. */
export interface ImageHold {
  readonly image: ReplayImage;
  /** Where to let go of it (ReplayImages.release). */
  readonly images: ReplayImages;
  /** Events [0, covers) of the stream's replay are the image's first `covers` events. */
  readonly covers: number;
}

/** How many leading events the two lists share (the same objects). */
function commonPrefix(a: readonly FramedEvent[], b: readonly FramedEvent[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class ReplayImages {
  private readonly maxBytes: number;
  private readonly byFirst = new Map<FramedEvent, ReplayImage>();
  /** Bytes of the images held now. */
  heldBytes = 0;
  /** Images built (a fresh copy of a replay's bytes); the tests read it. */
  built = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Images held now. */
  get size(): number {
    return this.byFirst.size;
  }

  /**
   * An image for `events` (a replay, oldest first): the one built from the same first event, or a
   * new one when the budget allows; null when neither (the replay goes out event by event).
   */
  acquire(events: readonly FramedEvent[]): ImageHold | null {
    const first = events[0];
    if (first === undefined) return null;
    const kept = this.byFirst.get(first);
    if (kept !== undefined) {
      kept.users++;
      return { image: kept, images: this, covers: commonPrefix(kept.events, events) };
    }
    const total = payloadBytes(events);
    if (total === 0 || this.heldBytes + total > this.maxBytes) return null;
    const bytes = Buffer.allocUnsafeSlow(total);
    const ends = new Uint32Array(events.length);
    let at = 0;
    for (let i = 0; i < events.length; i++) {
      const payload = events[i]!.payload;
      payload.copy(bytes, at);
      at += payload.length;
      ends[i] = at;
    }
    const image: ReplayImage = { events, ends, bytes, users: 1 };
    this.byFirst.set(first, image);
    this.heldBytes += total;
    this.built++;
    return { image, images: this, covers: events.length };
  }

  /** A stream lets go of its image (once per acquire). */
  release(image: ReplayImage): void {
    if (image.users <= 0) return;
    image.users--;
    if (image.users > 0) return;
    const first = image.events[0]!;
    if (this.byFirst.get(first) === image) this.byFirst.delete(first);
    this.heldBytes -= image.bytes.length;
  }
}

/**
 * The page of an image-covered replay from event `from` (< covers): at least one event, then up
 * to `maxBytes`, as one slice. Returns the slice and the next event's index.
 */
export function imagePage(
  hold: ImageHold,
  from: number,
  maxBytes: number,
): { part: Buffer; next: number } {
  const { ends, bytes } = hold.image;
  const start = from === 0 ? 0 : ends[from - 1]!;
  let next = from + 1;
  while (next < hold.covers && ends[next]! - start <= maxBytes) next++;
  return { part: bytes.subarray(start, ends[next - 1]!), next };
}
