// A subscriber worker with the raw receiver (`--receiver raw`): like worker.ts, but each subscriber
// is a `net` socket that writes the GET by hand and reads the response with raw/http-response.ts
// (HTTP/1.1 chunked framing) and raw/sse-reader.ts (SSE lines as bytes), just enough to take each
// event's id, seq and ts and check its data's shape: what wrk is to a browser. No reconnection (the
// client-library receiver does none either); a stream that ends or breaks counts its reason as an
// error, and the events it then misses as lost. Arrival time is read once per socket read. On
// several-channel streams (/sse/streams) each event's data is the envelope, read as bytes by
// stream-envelope.ts (the channel, and seq and ts inside the escaped inner data). Single-channel
// streams of one URL share their bytes (shared-stream.ts): each subscriber compares its reads
// with the shared ones instead of parsing them, and reads on its own from the first that differs.
import type net from 'node:net';
import { HttpFramingError, HttpResponseParser } from '../raw/http-response.ts';
import { connectReading } from '../raw/reading-socket.ts';
import { eventStreamRequest, type RawTarget, rawTarget } from '../raw/request.ts';
import { SseReader } from '../raw/sse-reader.ts';
import { intactBytes, publishTimeIn, sequenceNumberIn } from './event-data.ts';
import { DeliveryLedger, type LedgerSubscriber, serveWorker } from './ledger.ts';
import type { WorkerReply } from './protocol.ts';
import { SharedCursor, type SharedEvent, SharedStream } from './shared-stream.ts';
import { EnvelopeReader } from './stream-envelope.ts';

/** A subscriber not open (status and headers read) this long after its connect counts as failed. */
const OPEN_TIMEOUT_MS = 30_000;

const ledger = new DeliveryLedger();
const streams: RawStream[] = [];
/** Reads the envelopes of several-channel streams (one for the worker: events come one by one). */
let envelopes: EnvelopeReader | null = null;

class RawStream {
  private readonly sub: LedgerSubscriber;
  private readonly socket: net.Socket;
  private readonly http: HttpResponseParser;
  private readonly sse: SseReader;
  /** The stream's last event id (the spec's last event ID buffer: kept by events without one). */
  private lastId: string | undefined = undefined;
  /** When the bytes being read arrived (epoch ms). */
  private now = 0;
  private ended = false;
  private settle: ((opened: boolean) => void) | null;
  /** Its place in the worker's shared stream for its URL (shared-stream.ts); null: reads alone. */
  private readonly cursor: SharedCursor | null;
  private readonly deliverShared = (e: SharedEvent) => this.shared(e);
  /** Its last event id, where it may join the shared stream (none once ended). */
  private readonly joinId = () => (this.ended ? undefined : this.lastId);

  constructor(
    target: RawTarget,
    request: Buffer,
    shared: SharedStream | null,
    settle: (opened: boolean) => void,
  ) {
    this.sub = ledger.add();
    this.settle = settle;
    this.cursor = shared === null ? null : new SharedCursor(shared);
    this.sse = new SseReader((id, event, data) => this.event(id, event, data));
    this.http = new HttpResponseParser({
      onHead: (status, headers) => this.head(status, headers),
      onBody: (bytes) => this.body(bytes),
      onEnd: () => this.end('stream_ended'),
    });
    this.socket = connectReading(target, (bytes) => {
      this.now = performance.timeOrigin + performance.now();
      try {
        this.http.feed(bytes);
      } catch (err) {
        if (!(err instanceof HttpFramingError)) throw err;
        this.end('bad_http_framing');
      }
    });
    this.socket.write(request);
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.end(err.code ?? 'socket_error'));
    this.socket.on('close', () => this.end('connection_closed'));
  }

  private head(status: number, headers: Record<string, string>): void {
    if (status !== 200) this.end(`http_${status}`);
    else if (!(headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.end('not_an_event_stream');
    } else {
      this.sub.opened = true;
      this.settle?.(true);
      this.settle = null;
    }
  }

  /** Body bytes: compared with the shared stream once joined, else read here (then maybe join). */
  private body(bytes: Buffer): void {
    if (this.cursor === null) this.sse.feed(bytes);
    else this.cursor.take(bytes, this.sse, this.deliverShared, this.joinId);
  }

  /** An event of the shared stream this stream's bytes matched: as if read here. */
  private shared(e: SharedEvent): void {
    if (this.ended) return;
    this.sub.shared = true;
    this.lastId = e.lastId;
    if (e.name !== null) {
      ledger.error(`event_${e.name}`);
      return;
    }
    const shape = ledger.shape;
    let read = e.read;
    if (read === undefined || read.shape !== shape) {
      read = {
        seq: read?.seq ?? sequenceNumberIn(e.data),
        ts: read?.ts ?? publishTimeIn(e.data),
        shape,
        intact: shape === null || intactBytes(e.data, shape),
      };
      e.read = read;
    }
    ledger.deliver(this.sub, read.seq, read.ts, read.intact, e.lastId, this.now);
  }

  private event(id: string | undefined, event: string | undefined, data: Buffer): void {
    if (this.ended) return;
    if (id !== undefined) this.lastId = id;
    if (event !== undefined && event !== 'message') {
      ledger.error(`event_${event}`);
      return;
    }
    const shape = ledger.shape;
    if (envelopes !== null) {
      const e = envelopes;
      e.read(data, shape);
      ledger.deliverOnChannel(this.sub, e.channel, e.seq, e.ts, e.intact, this.lastId, this.now);
      return;
    }
    const intact = shape === null || intactBytes(data, shape);
    ledger.deliver(
      this.sub,
      sequenceNumberIn(data),
      publishTimeIn(data),
      intact,
      this.lastId,
      this.now,
    );
  }

  /** The stream is over (counted once, by its first reason); not yet open: it failed to open. */
  end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    ledger.error(reason);
    this.settle?.(false);
    this.settle = null;
    this.socket.destroy();
  }

  /** Still not open (the open timeout): it failed to open. */
  timeOut(): void {
    if (this.settle !== null) this.end('open_timeout');
  }

  /** Closed by the worker: not an error. */
  close(): void {
    this.ended = true;
    this.socket.destroy();
  }
}

/** Subscribers opened per batch; the worker yields to its event loop between batches. */
const OPEN_BATCH = 250;

async function open(urls: string[]): Promise<WorkerReply> {
  const spec = ledger.streams;
  envelopes = spec === null ? null : new EnvelopeReader(spec.prefix, spec.names.length);
  const requests = new Map<
    string,
    { target: RawTarget; request: Buffer; shared: SharedStream | null }
  >();
  const opening: Promise<boolean>[] = [];
  for (let i = 0; i < urls.length; i += OPEN_BATCH) {
    for (let j = i; j < Math.min(urls.length, i + OPEN_BATCH); j++) {
      const raw = urls[j]!;
      let r = requests.get(raw);
      if (r === undefined) {
        const url = new URL(raw);
        // Several-channel streams differ per stream (their envelopes): no shared stream.
        const shared = envelopes === null ? new SharedStream() : null;
        r = { target: rawTarget(url), request: eventStreamRequest(url), shared };
        requests.set(raw, r);
      }
      const { target, request, shared } = r;
      opening.push(
        new Promise((resolve) => streams.push(new RawStream(target, request, shared, resolve))),
      );
    }
    await new Promise((r) => setImmediate(r));
  }
  const timer = setTimeout(() => {
    for (const s of streams) s.timeOut();
  }, OPEN_TIMEOUT_MS);
  const results = await Promise.all(opening);
  clearTimeout(timer);
  const opened = results.filter(Boolean).length;
  return { type: 'opened', opened, failed: results.length - opened, errors: { ...ledger.errors } };
}

async function close(): Promise<void> {
  for (const s of streams) s.close();
}

serveWorker(ledger, { open, close }, 'raw worker');
