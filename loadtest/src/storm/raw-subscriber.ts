// One storm subscriber on a raw `net` socket: writes the GET with Last-Event-ID by hand, reads the
// response with http-response.ts and sse-reader.ts, checks the replay (replay-check.ts) and ends
// with one outcome: served (every event), refused (a status other than 200, or a notice event),
// reset (an `event: reset`), failed (a socket error, broken framing, a stream that ended early)
// or timed out. Times are epoch ms (performance.timeOrigin + performance.now()).
import type net from 'node:net';
import { HttpFramingError, HttpResponseParser } from '../raw/http-response.ts';
import { connectReading } from '../raw/reading-socket.ts';
import type { RawTarget } from '../raw/request.ts';
import { SseReader } from '../raw/sse-reader.ts';
import type { ReferenceReplay } from './reference-replay.ts';
import { ReplayCheck, type ReplayExpectation } from './replay-check.ts';

export type OutcomeKind = 'served' | 'refused' | 'reset' | 'failed' | 'timed_out';

export interface Outcome {
  kind: OutcomeKind;
  /** Why (refused: `http_<status>` or the notice's name; reset: its reason; failed: the error). */
  reason: string;
}

/** Where to connect and the request bytes to write (built once per target). */
export interface StormTarget extends RawTarget {
  request: Buffer;
}

/** The server's refusal notices (routes/stream-refusal.ts): a 200 stream that only says no. */
export const NOTICES = new Set(['overloaded', 'shutdown', 'unavailable']);

const now = () => performance.timeOrigin + performance.now();

/** The `"reason":"…"` of a reset event's data, without JSON.parse. */
export const resetReason = (data: Buffer): string =>
  /"reason":"([^"]*)"/.exec(data.toString('utf8'))?.[1] ?? 'unknown';

export class RawSubscriber {
  readonly check: ReplayCheck;
  connectAt = 0;
  firstEventAt: number | null = null;
  servedAt: number | null = null;
  outcome: Outcome | null = null;
  /** The server ended the response (a complete body) before the replay was. */
  endedByServer = false;
  /** Body bytes verified by comparison with the worker's reference (reference-replay.ts). */
  comparedBytes = 0;
  private accepted = false;
  private socket: net.Socket | null = null;
  private readonly onDone: (sub: RawSubscriber) => void;
  private readonly reference: ReferenceReplay | null;
  private readonly sse = new SseReader((id, event, data) => this.event(id, event, data));
  /** Body bytes fed to the event-by-event reader. */
  private fed = 0;
  /** Where this body is in the reference while compared with it; -1: read event by event. */
  private refPos = -1;
  /** Where the comparison began: the bytes since then were not fed to the reader. */
  private joinedAt = 0;
  private recording = false;

  /** `reference`: the worker's for this target (null: every event read and checked one by one). */
  constructor(
    expect: ReplayExpectation,
    onDone: (sub: RawSubscriber) => void,
    reference: ReferenceReplay | null = null,
  ) {
    this.check = new ReplayCheck(expect);
    this.onDone = onDone;
    this.reference = reference;
  }

  /** Connects and writes the request; the outcome comes through `onDone`. */
  start(target: StormTarget): void {
    const http = new HttpResponseParser({
      onHead: (status, headers) => this.head(status, headers),
      onBody: (bytes) => this.body(bytes),
      onEnd: () => this.ended(),
    });
    this.connectAt = now();
    const socket = connectReading(target, (bytes) => this.guard(() => http.feed(bytes)));
    this.socket = socket;
    socket.write(target.request);
    socket.on('error', (err: NodeJS.ErrnoException) => this.finish('failed', err.code ?? 'error'));
    socket.on('close', () =>
      this.guard(() => {
        if (!http.close()) this.finish('failed', 'connection_closed');
      }),
    );
  }

  /** The timeout: a subscriber still waiting counts as timed out. */
  stop(): void {
    this.finish('timed_out', 'timeout');
  }

  /** Runs a parser step; broken framing fails the subscriber. */
  private guard(step: () => void): void {
    if (this.outcome !== null) return;
    try {
      step();
    } catch (err) {
      if (!(err instanceof HttpFramingError)) throw err;
      this.finish('failed', 'bad_http_framing');
    }
  }

  /** Body bytes: compared with the reference, or read event by event (see reference-replay.ts). */
  private body(bytes: Buffer): void {
    // Once the outcome is known the rest is not read (a reset's replay, say).
    if (this.outcome !== null) return;
    if (this.refPos < 0) {
      const ref = this.reference;
      if (ref !== null && this.fed === 0 && !this.recording) this.recording = ref.claim(this);
      if (!this.canJoin()) {
        if (this.recording) ref!.record(this, bytes);
        this.fed += bytes.length;
        this.sse.feed(bytes);
        return;
      }
      this.refPos = this.fed;
      this.joinedAt = this.fed;
    }
    this.compare(bytes);
  }

  /** The reader is where the reference's reader was at one of its event ends (or at the start). */
  private canJoin(): boolean {
    const ref = this.reference;
    if (ref === null || ref.bytes === null || this.recording) return false;
    if (!this.sse.idle || !this.check.clean) return false;
    const seq = this.check.highestSeq;
    return seq === 0 ? this.fed === 0 : this.fed === ref.ends[seq - 1];
  }

  private compare(bytes: Buffer): void {
    const ref = this.reference!;
    const expected = ref.bytes!;
    const n = Math.min(bytes.length, expected.length - this.refPos);
    if (!bytes.subarray(0, n).equals(expected.subarray(this.refPos, this.refPos + n))) {
      this.leave();
      this.fed += bytes.length;
      this.sse.feed(bytes);
      return;
    }
    this.refPos += n;
    this.comparedBytes += n;
    if (this.firstEventAt === null && this.refPos >= ref.ends[0]!) this.firstEventAt = now();
    if (this.refPos === expected.length) {
      this.check.receivedAll();
      this.servedAt = now();
      this.finish('served', 'served');
    }
  }

  /** Back to reading event by event: the reader first gets the bytes matched since joining. */
  private leave(): void {
    const matched = this.reference!.bytes!.subarray(this.joinedAt, this.refPos);
    this.refPos = -1;
    this.fed += matched.length;
    this.sse.feed(matched);
  }

  private head(status: number, headers: Record<string, string>): void {
    if (status !== 200) this.finish('refused', `http_${status}`);
    else if (!(headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.finish('failed', 'not_an_event_stream');
    } else this.accepted = true;
  }

  private event(id: string | undefined, event: string | undefined, data: Buffer): void {
    if (this.outcome !== null) return;
    if (event === undefined || event === 'message') {
      this.firstEventAt ??= now();
      this.check.add(id, data);
      if (this.check.complete) {
        this.servedAt = now();
        this.finish('served', 'served');
      }
    } else if (event === 'reset') this.finish('reset', resetReason(data));
    else if (NOTICES.has(event) && this.firstEventAt === null) this.finish('refused', event);
    else this.check.corrupted++;
  }

  /** The response ended complete before the replay did. */
  private ended(): void {
    this.endedByServer = this.accepted;
    this.finish('failed', this.accepted ? 'ended_early' : 'empty_response');
  }

  private finish(kind: OutcomeKind, reason: string): void {
    if (this.outcome !== null) return;
    // Not served while comparing: the events matched so far are counted by reading them.
    if (this.refPos >= 0 && kind !== 'served') {
      this.leave();
      if (this.outcome !== null) return;
    }
    if (this.recording) {
      this.recording = false;
      this.reference!.finished(this, kind === 'served');
    }
    this.outcome = { kind, reason };
    this.socket?.destroy();
    this.onDone(this);
  }
}
