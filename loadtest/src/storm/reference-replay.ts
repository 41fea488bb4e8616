// A worker's reference replay, so that a storm's receiver is not the bottleneck: every subscriber
// of a target sends the same request (one URL, one Last-Event-ID) and must get the same body. The
// first one to get body bytes records its body while the event-by-event reader (sse-reader.ts +
// replay-check.ts) verifies it; once it is served, its body up to the end of event K is the
// reference, with where each event ends in it. Every other subscriber is then checked by comparing
// its body with the reference (memcmp) from a point where the two readers are in the same state:
// from its first body byte, or from the end of an event its own reader verified, at an event
// boundary with nothing pending. Identical bytes from identical reader states parse to identical
// events, so a match is as good as reading them; at the first byte that differs the subscriber
// goes back to reading event by event (fed the bytes it matched since joining), so a gap, a
// duplicate, a wrong byte or a heartbeat in the middle is counted exactly as before. With no
// reference (the recorder was not served) every subscriber reads event by event, as before.
import { SseReader } from '../raw/sse-reader.ts';
import { ReplayCheck, type ReplayExpectation } from './replay-check.ts';

/** The most body bytes recorded (a longer replay gets no reference: read event by event). */
const MAX_RECORDED_BYTES = 256 * 1024 * 1024;

export class ReferenceReplay {
  private readonly expect: ReplayExpectation;
  /** The verified body up to the end of event K; null until there is one. */
  bytes: Buffer | null = null;
  /** ends[i]: where the body's (i+1)-th event ends (seq i+1 in a verified replay). */
  ends: number[] = [];
  private recorder: object | null = null;
  private recorded: Buffer[] = [];
  private recordedBytes = 0;

  constructor(expect: ReplayExpectation) {
    this.expect = expect;
  }

  /** Whether `who`, about to read its first body bytes, records them (the first to ask does). */
  claim(who: object): boolean {
    if (this.bytes !== null || this.recorder !== null) return false;
    this.recorder = who;
    return true;
  }

  /** The recorder's body bytes, in order (copied: the socket's read buffer is reused). */
  record(who: object, bytes: Buffer): void {
    if (who !== this.recorder) return;
    this.recordedBytes += bytes.length;
    if (this.recordedBytes > MAX_RECORDED_BYTES) this.drop();
    else this.recorded.push(Buffer.from(bytes));
  }

  /** The recorder has its outcome: served makes its body the reference (re-read to be sure). */
  finished(who: object, served: boolean): void {
    if (who !== this.recorder) return;
    const body = served ? Buffer.concat(this.recorded) : null;
    this.drop();
    if (body === null) return;
    const ends = eventEnds(body, this.expect);
    if (ends === null) return;
    this.ends = ends;
    this.bytes = body.subarray(0, ends[ends.length - 1]);
  }

  private drop(): void {
    this.recorder = null;
    this.recorded = [];
    this.recordedBytes = 0;
  }
}

/**
 * Where each event of `body` ends (fed line by line to a fresh reader), when the body is a whole
 * verified replay (K events, each once, in order, byte for byte); null otherwise.
 */
function eventEnds(body: Buffer, expect: ReplayExpectation): number[] | null {
  const check = new ReplayCheck(expect);
  const ends: number[] = [];
  let other = false;
  const reader = new SseReader((id, event, data) => {
    if (event === undefined || event === 'message') check.add(id, data);
    else other = true;
  });
  reader.feedByLine(body, (end) => {
    ends.push(end);
    return !check.complete;
  });
  const clean =
    check.complete &&
    !other &&
    check.duplicated + check.outOfOrder + check.corrupted === 0 &&
    ends.length === check.wanted;
  return clean ? ends : null;
}
