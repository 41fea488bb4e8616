// One subscriber of the restart storm on raw `net` sockets, behaving like an EventSource: it opens
// live (no Last-Event-ID) and takes the live event (seq 0); when the server restarts its stream
// ends, and it reconnects by itself after the reconnection time (the client library's
// ReconnectPolicy: the server's `retry:` fields, the shutdown's jittered one included, and a
// jittered exponential backoff after attempts that opened no stream), sending its last event id
// as Last-Event-ID, until it has seq 1..K, the events published after the restart: replayed,
// or live if it came back before they were published. Every event is checked byte for byte
// against replay-check.ts historyData and, once the coordinator has sent them, the ids the server
// gave (lost, duplicated, out of order, corrupted). An `event: reset` is counted and read past
// (the memory broker loses its history with the process: the reset and the new record follow).
// Once back, every subscriber of a URL gets the same bytes after the same event: an attempt reads
// on its own up to its first event, then compares its reads with the worker's shared stream for
// the URL (fanout/shared-stream.ts, as the fan-out's raw receiver does) and takes the events it
// matched from there, reading alone again from the first byte that differs. The events reach the
// same checks either way; `retry:` fields are read only by a subscriber's own reader (the server
// sends them at a stream's start, and a notice's jittered one differs from stream to stream).
import type net from 'node:net';
import { ReconnectPolicy } from '../../../services/client/src/reconnect.ts';
import { sequenceNumberIn } from '../fanout/event-data.ts';
import { SharedCursor, type SharedEvent, SharedStream } from '../fanout/shared-stream.ts';
import { HttpFramingError, HttpResponseParser } from '../raw/http-response.ts';
import { connectReading } from '../raw/reading-socket.ts';
import { eventStreamRequest, type RawTarget } from '../raw/request.ts';
import { SseReader } from '../raw/sse-reader.ts';
import { NOTICES, resetReason } from './raw-subscriber.ts';
import { historyData } from './replay-check.ts';

const now = () => performance.timeOrigin + performance.now();

/** What every subscriber of a worker shares: the expected events and the counts by reason. */
export class ResumeBook {
  /** K: seq 1..K follow the restart. */
  readonly history: number;
  /** The data of seq 0..K. */
  readonly data: Buffer[];
  /** The server's ids of seq 0..K, once the coordinator sent them. */
  ids: string[] | null = null;
  readonly refused: Record<string, number> = {};
  readonly reset: Record<string, number> = {};
  private readonly shared = new Map<string, SharedStream>();

  constructor(history: number, eventBytes: number) {
    this.history = history;
    this.data = Array.from({ length: history + 1 }, (_, seq) =>
      Buffer.from(historyData(seq, eventBytes)),
    );
  }

  /** The shared stream of a URL's resumed attempts. */
  sharedFor(url: string): SharedStream {
    let stream = this.shared.get(url);
    if (stream === undefined) {
      stream = new SharedStream();
      this.shared.set(url, stream);
    }
    return stream;
  }
}

const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

export class ResumingSubscriber {
  private readonly book: ResumeBook;
  private readonly target: RawTarget;
  private readonly url: URL;
  private readonly policy = new ReconnectPolicy({ retryMs: 3000 });
  private socket: net.Socket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastEventId: string | undefined = undefined;
  /** The current attempt got a 200 event stream (a notice stream counts as refused). */
  private attemptOpened = false;
  private attemptRefused = false;
  private attemptAt = 0;
  private stopped = false;
  private onOpen: ((opened: boolean, reason: string) => void) | null;
  private readonly seen: Uint8Array;
  private highest = 0;
  /** (seq, id) received before the ids were known: checked when they come. */
  private unchecked: [number, string][] = [];

  opened = false;
  live = false;
  droppedAt: number | null = null;
  /** Connect time of the attempt that completed the replay, and when it did. */
  servedFrom: number | null = null;
  servedAt: number | null = null;
  attempts = 0;
  resetSeen = false;
  /** Events taken from the shared stream (matched, not parsed). */
  sharedEvents = 0;
  distinct = 0;
  duplicated = 0;
  outOfOrder = 0;
  corrupted = 0;

  constructor(
    book: ResumeBook,
    target: RawTarget,
    url: URL,
    onOpen: (opened: boolean, reason: string) => void,
  ) {
    this.book = book;
    this.target = target;
    this.url = url;
    this.onOpen = onOpen;
    this.seen = new Uint8Array(book.history + 1);
  }

  get served(): boolean {
    return this.servedAt !== null;
  }

  /** Events missing below the highest seq received (a gap in what the server sent). */
  get lost(): number {
    return this.highest - this.distinct;
  }

  /** Opens the live stream. */
  start(): void {
    this.connect();
  }

  /** The ids arrived: checks the events received before. */
  idsKnown(): void {
    for (const [seq, id] of this.unchecked) this.checkId(seq, id);
    this.unchecked = [];
  }

  /** Not open yet: it failed to open (the open timeout). */
  openTimeout(): void {
    if (this.onOpen === null) return;
    this.onOpen(false, 'open_timeout');
    this.onOpen = null;
    this.stop();
  }

  /** Stops reading and reconnecting (the deadline, or the end). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.destroy();
  }

  private connect(): void {
    if (this.stopped) return;
    this.attemptOpened = false;
    this.attemptRefused = false;
    this.attemptAt = now();
    if (this.droppedAt !== null) this.attempts++;
    // The attempt's last event id (the spec's buffer), whichever path read the event.
    let attemptId: string | undefined;
    const sse = new SseReader(
      (id, event, data) => {
        if (id !== undefined) attemptId = id;
        this.event(id, event, data);
      },
      (ms) => this.policy.setRetry(ms),
    );
    const cursor =
      this.droppedAt === null ? null : new SharedCursor(this.book.sharedFor(this.url.href));
    const deliver = (e: SharedEvent) => {
      attemptId = e.lastId;
      this.sharedEvents++;
      this.event(e.id, e.name ?? undefined, e.data);
    };
    const joinId = () => (this.stopped ? undefined : attemptId);
    const body = (bytes: Buffer) => {
      if (cursor === null) sse.feed(bytes);
      else cursor.take(bytes, sse, deliver, joinId);
    };
    const http = new HttpResponseParser({
      onHead: (status, headers) => this.head(status, headers),
      onBody: body,
      onEnd: () => this.ended('ended'),
    });
    const socket = connectReading(this.target, (bytes) => {
      if (this.socket !== socket) return;
      try {
        http.feed(bytes);
      } catch (err) {
        if (!(err instanceof HttpFramingError)) throw err;
        this.ended('bad_http_framing');
      }
    });
    this.socket = socket;
    socket.write(eventStreamRequest(this.url, this.lastEventId));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.socket === socket) this.ended(err.code ?? 'socket_error');
    });
    socket.on('close', () => {
      if (this.socket === socket) this.ended('connection_closed');
    });
  }

  private head(status: number, headers: Record<string, string>): void {
    if (status !== 200) this.ended(`http_${status}`);
    else if (!(headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.ended('not_an_event_stream');
    } else {
      this.attemptOpened = true;
      this.policy.opened();
      if (this.onOpen !== null) {
        this.opened = true;
        this.onOpen(true, 'opened');
        this.onOpen = null;
      }
    }
  }

  private event(id: string | undefined, event: string | undefined, data: Buffer): void {
    if (this.stopped) return;
    if (id !== undefined) this.lastEventId = id;
    if (event === undefined || event === 'message') this.message(id, data);
    else if (event === 'reset') {
      if (this.droppedAt !== null && !this.resetSeen) {
        this.resetSeen = true;
        bump(this.book.reset, resetReason(data));
      }
    } else if (NOTICES.has(event)) {
      // A refusal as a short 200 stream (the server is shutting down or full): it ends, and the
      // reconnection time it set applies.
      this.attemptRefused = true;
      if (this.droppedAt !== null) bump(this.book.refused, `notice_${event}`);
    } else this.corrupted++;
  }

  private message(id: string | undefined, data: Buffer): void {
    const seq = sequenceNumberIn(data);
    if (!(seq >= 0 && seq <= this.book.history) || !data.equals(this.book.data[seq]!)) {
      this.corrupted++;
      return;
    }
    if (seq === 0) {
      if (this.live) this.duplicated++;
      this.live = true;
      return;
    }
    if (id === undefined) this.corrupted++;
    else if (this.book.ids === null) this.unchecked.push([seq, id]);
    else if (!this.checkId(seq, id)) return;
    if (this.seen[seq] === 1) {
      this.duplicated++;
      return;
    }
    this.seen[seq] = 1;
    this.distinct++;
    if (seq < this.highest) this.outOfOrder++;
    else this.highest = seq;
    if (this.distinct === this.book.history) {
      this.servedAt = now();
      this.servedFrom = this.attemptAt;
    }
  }

  /** False (and counted as corrupted) when the id is not the one the server gave seq. */
  private checkId(seq: number, id: string): boolean {
    if (this.book.ids![seq] === id) return true;
    this.corrupted++;
    return false;
  }

  /** The attempt is over: the drop (the restart), a refusal, or a failure; then reconnect. */
  private ended(reason: string): void {
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
    if (this.stopped) return;
    if (this.onOpen !== null) {
      // Never opened before the restart: it takes no part in the storm.
      this.onOpen(false, reason);
      this.onOpen = null;
      this.stopped = true;
      return;
    }
    if (this.droppedAt === null) this.droppedAt = now();
    else if (!this.attemptOpened && !this.attemptRefused) bump(this.book.refused, reason);
    if (this.served) return;
    const delay = this.policy.nextDelay(!this.attemptOpened);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
