// Library core: an EventSource-like stream of events over transport.ts + parser.ts.
// connectEventStream is the callback API (one closure set per stream, nothing allocated per event
// beyond the parser's own event object), for consumers that hold thousands of streams;
// openEventStream wraps it as an async iterable with backpressure.
import type { Dispatcher } from 'undici';
import { fromTransportError, SseClientError } from './errors.ts';
import { createEventParser, type EventParser, type SseEvent } from './parser.ts';
import { ReconnectPolicy } from './reconnect.ts';
import { isMultiChannelUrl, unwrapEnvelope } from './stream-envelope.ts';
import { baseHeaders, discard, openStream } from './transport.ts';

export interface OpenInfo {
  url: string;
  /** 1 for the first connection, then +1 per reconnection attempt. */
  attempt: number;
  /** The Last-Event-ID sent with this request ("" = none). */
  lastEventId: string;
}

export interface ReconnectInfo {
  url: string;
  /** The attempt about to be made (2 for the first reconnection). */
  attempt: number;
  delayMs: number;
  lastEventId: string;
}

export interface EventStreamOptions {
  signal?: AbortSignal;
  /** Extra request headers, e.g. Authorization. */
  headers?: Record<string, string>;
  /** Last-Event-ID for the first request (later requests send the stream's own). */
  lastEventId?: string;
  /** Reconnect like EventSource after the stream ends or a network error (default false). */
  reconnect?: boolean;
  /** Initial reconnection time in ms (default 3000); the server's `retry:` replaces it. */
  retryMs?: number;
  /** Cap of the exponential backoff on consecutive failures in ms (default 30000). */
  maxBackoffMs?: number;
  /** Idle timeout in ms: no bytes for this long (headers or body) is a dead connection; 0 = none (default). */
  timeoutMs?: number;
  /** Connect timeout in ms (default 10000) when no `dispatcher` is given. */
  connectTimeoutMs?: number;
  /** Bound on one buffered line/event in UTF-8 bytes (default 1 MiB); exceeding it is fatal. */
  maxEventBytes?: number;
  /** undici dispatcher to share across streams (e.g. one Agent for 5000 streams). */
  dispatcher?: Dispatcher;
  /** Random source for the backoff jitter, in [0, 1). */
  random?: () => number;
  /** A stream opened (200 with text/event-stream). */
  onOpen?(info: OpenInfo): void;
  /** An open stream stopped (end, error or close), before any reconnection. */
  onDisconnect?(): void;
  /** A connection failed or broke; `willRetry` tells whether a reconnection follows. */
  onError?(error: SseClientError, willRetry: boolean): void;
  /** A reconnection is scheduled after `delayMs`. */
  onReconnect?(info: ReconnectInfo): void;
  /** The server changed the reconnection time. */
  onRetry?(ms: number): void;
}

/** Why a stream stopped for good. */
export type CloseReason =
  /** The server ended the stream (without `reconnect`). */
  | 'end'
  /** The server answered 204 No Content: nothing more to read. */
  | 'no_content'
  /** close() was called or the signal aborted. */
  | 'closed'
  /** A fatal error, or any error without `reconnect`; see `error`. */
  | 'error';

export interface CloseResult {
  reason: CloseReason;
  error?: SseClientError;
  lastEventId: string;
}

export interface ConnectOptions extends EventStreamOptions {
  /** Called synchronously for every dispatched event; keep it cheap. */
  onEvent(event: SseEvent): void;
  /** Called once when the stream stops for good (same value as `done`). */
  onClose?(result: CloseResult): void;
}

export interface EventStreamHandle {
  /** Stops the stream (idempotent); `done` then resolves with reason "closed". */
  close(): void;
  /** Resolves when the stream stops for good; rejects only if a callback threw. */
  readonly done: Promise<CloseResult>;
  /** The last event ID (what a reconnection sends as Last-Event-ID). */
  readonly lastEventId: string;
  /** True while a response body is open. */
  readonly connected: boolean;
  /** Stops reading from the socket (TCP backpressure) until resume(). */
  pause(): void;
  resume(): void;
}

type Body = NonNullable<Awaited<ReturnType<typeof openStream>>['body']>;

/** What one connection attempt came to: a final result, or whether it opened and how it broke. */
type Attempt = { result: CloseResult } | { opened: boolean; error: SseClientError | null };

/** Opens an event stream and calls `onEvent` for each event. Never throws after the URL check. */
export function connectEventStream(url: string | URL, options: ConnectOptions): EventStreamHandle {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new TypeError(`unsupported URL scheme ${target.protocol} (expected http: or https:)`);
  }
  return new EventStream(target, options);
}

/**
 * One event source: the attempt loop (connect, read, decide, wait, reconnect), its parser and
 * reconnection policy, and the handle's state. Methods the caller may pass around are bound.
 */
class EventStream implements EventStreamHandle {
  readonly done: Promise<CloseResult>;
  private readonly target: URL;
  private readonly href: string;
  private readonly options: ConnectOptions;
  private readonly headers: Record<string, string>;
  private readonly controller = new AbortController();
  private readonly policy: ReconnectPolicy;
  private readonly parser: EventParser;
  private closed = false;
  private isConnected = false;
  private paused = false;
  private body: Body | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private tooLarge: SseClientError | null = null;
  private callbackError: unknown = null;

  constructor(target: URL, options: ConnectOptions) {
    this.target = target;
    this.href = target.href;
    this.options = options;
    this.headers = baseHeaders(options.headers);
    this.policy = new ReconnectPolicy({
      retryMs: options.retryMs,
      maxBackoffMs: options.maxBackoffMs,
      random: options.random,
    });
    this.parser = this.createParser();
    const signal = options.signal;
    if (signal?.aborted) this.close();
    else signal?.addEventListener('abort', this.close, { once: true });
    this.done = this.run().then(
      (result) => {
        this.closed = true;
        signal?.removeEventListener('abort', this.close);
        options.onClose?.(result);
        return result;
      },
      (err: unknown) => {
        this.closed = true;
        this.controller.abort();
        signal?.removeEventListener('abort', this.close);
        throw err;
      },
    );
  }

  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  readonly close = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.controller.abort();
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
  };

  readonly pause = (): void => {
    this.paused = true;
    this.body?.pause();
  };

  readonly resume = (): void => {
    this.paused = false;
    this.body?.resume();
  };

  private createParser(): EventParser {
    const { onEvent, onRetry } = this.options;
    const multi = isMultiChannelUrl(this.target);
    return createEventParser({
      maxEventBytes: this.options.maxEventBytes,
      lastEventId: this.options.lastEventId,
      onEvent: (event) => {
        // Events later in a chunk that was already being parsed when close() ran are dropped.
        if (!this.closed) onEvent(multi ? unwrapEnvelope(event) : event);
      },
      onRetry: (ms) => {
        this.policy.setRetry(ms);
        onRetry?.(ms);
      },
      onTooLarge: (limit) => {
        this.tooLarge = new SseClientError(
          'too_large',
          `an event or line exceeded the maxEventBytes limit of ${limit} bytes`,
          { url: this.href, fatal: true },
        );
        this.body?.destroy(this.tooLarge);
      },
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.parser.feed(chunk);
    } catch (err) {
      this.callbackError = err;
      this.body?.destroy(err as Error);
    }
  };

  private closedResult(): CloseResult {
    return { reason: 'closed', lastEventId: this.parser.lastEventId };
  }

  private async run(): Promise<CloseResult> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) return this.closedResult();
      const outcome = await this.attempt(attempt);
      if ('result' in outcome) return outcome.result;
      const final = this.settle(outcome.error);
      if (final !== null) return final;
      await this.waitToReconnect(attempt + 1, !outcome.opened);
    }
  }

  /** One connection: open it, then read events until the body stops. */
  private async attempt(attempt: number): Promise<Attempt> {
    this.parser.reset();
    this.tooLarge = null;
    let opened = false;
    const sentId = this.parser.lastEventId;
    try {
      const res = await openStream(this.target, this.headers, {
        lastEventId: sentId,
        signal: this.controller.signal,
        timeoutMs: this.options.timeoutMs,
        connectTimeoutMs: this.options.connectTimeoutMs,
        dispatcher: this.options.dispatcher,
      });
      if (res.status === 204) {
        return { result: { reason: 'no_content', lastEventId: this.parser.lastEventId } };
      }
      if (this.closed) {
        discard(res.body);
        return { result: this.closedResult() };
      }
      opened = true;
      await this.read(res.body, { url: this.href, attempt, lastEventId: sentId });
      return { opened, error: null };
    } catch (err) {
      return { opened, error: this.tooLarge ?? fromTransportError(err, this.href) };
    }
  }

  /** Reads an opened body until it ends, fails or is destroyed. */
  private async read(body: Body, info: OpenInfo): Promise<void> {
    this.isConnected = true;
    this.body = body;
    this.policy.opened();
    this.options.onOpen?.(info);
    try {
      await new Promise<void>((resolve, reject) => {
        body.on('data', this.onData);
        body.once('end', resolve);
        body.on('error', reject);
        body.once('close', resolve); // destroyed without an error: treat as the end
        if (this.paused) body.pause();
      });
    } finally {
      this.body = null;
      this.isConnected = false;
      discard(body);
      this.options.onDisconnect?.();
    }
  }

  /** After an attempt: the final result, or null when a reconnection follows. */
  private settle(error: SseClientError | null): CloseResult | null {
    if (this.callbackError !== null) throw this.callbackError;
    if (this.closed) return this.closedResult();
    const reconnect = this.options.reconnect ?? false;
    const lastEventId = this.parser.lastEventId;
    if (error === null) return reconnect ? null : { reason: 'end', lastEventId };
    const retry = reconnect && !error.fatal;
    this.options.onError?.(error, retry);
    return retry ? null : { reason: 'error', error, lastEventId };
  }

  private async waitToReconnect(attempt: number, failed: boolean): Promise<void> {
    const delayMs = this.policy.nextDelay(failed);
    this.options.onReconnect?.({
      url: this.href,
      attempt,
      delayMs,
      lastEventId: this.parser.lastEventId,
    });
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, delayMs);
    });
    this.timer = null;
    this.wake = null;
  }
}

/** Events buffered by openEventStream before it stops reading from the socket. */
const HIGH_WATER_MARK = 256;

export interface EventStreamIterable extends AsyncIterableIterator<SseEvent> {
  /** Stops the stream; a pending next() resolves as done. */
  close(): void;
  readonly lastEventId: string;
  /** How the stream stopped, once it has. */
  readonly result: CloseResult | undefined;
}

/**
 * Opens an event stream as an async iterable (the connection starts on the first next()):
 *
 *   for await (const ev of openEventStream(url, { signal })) console.log(ev.id, ev.event, ev.data);
 *
 * The loop ends when the server ends the stream (without `reconnect`), on 204 No Content, on
 * break/return, or when the signal aborts; it throws an SseClientError on a connection error.
 */
export function openEventStream(
  url: string | URL,
  options: EventStreamOptions = {},
): EventStreamIterable {
  return new EventIterator(url, options);
}

type Waiter = {
  resolve(r: IteratorResult<SseEvent>): void;
  reject(err: unknown): void;
};

const DONE: IteratorResult<SseEvent> = Object.freeze({ value: undefined, done: true });

/**
 * connectEventStream behind a queue: events wait in `queue` (from `head` on) until next() takes
 * them; past HIGH_WATER_MARK the socket is paused until the queue drains.
 */
class EventIterator implements EventStreamIterable {
  private readonly url: string | URL;
  private readonly options: EventStreamOptions;
  private queue: SseEvent[] = [];
  private head = 0;
  private handle: EventStreamHandle | null = null;
  private closeResult: CloseResult | undefined;
  /** How the stream failed; `error: null` once the failure was reported (then only done). */
  private failure: { error: unknown } | null = null;
  private waiter: Waiter | null = null;
  private closedEarly = false;

  constructor(url: string | URL, options: EventStreamOptions) {
    this.url = url;
    this.options = options;
  }

  get lastEventId(): string {
    return this.handle?.lastEventId ?? this.options.lastEventId ?? '';
  }

  get result(): CloseResult | undefined {
    return this.closeResult;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<SseEvent>> {
    if (this.closedEarly) return Promise.resolve(DONE);
    this.handle ??= this.start();
    const handle = this.handle;
    if (this.head < this.queue.length) {
      const value = this.queue[this.head++]!;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
        handle.resume();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.failure) {
      const error = this.takeFailure();
      return error !== null ? Promise.reject(error) : Promise.resolve(DONE);
    }
    if (this.closeResult) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<SseEvent>> {
    this.close();
    return Promise.resolve(DONE);
  }

  /** Stops the stream; a pending next() resolves as done. */
  readonly close = (): void => {
    this.closedEarly = true;
    this.handle?.close();
    this.queue = [];
    this.head = 0;
    const w = this.waiter;
    this.waiter = null;
    w?.resolve(DONE);
  };

  private start(): EventStreamHandle {
    const handle = connectEventStream(this.url, {
      ...this.options,
      onEvent: (event) => this.push(event),
    });
    handle.done.then(
      (r) => {
        this.closeResult = r;
        if (r.reason === 'error') this.failure = { error: r.error };
        this.settle();
      },
      (err: unknown) => {
        this.failure = { error: err };
        this.settle();
      },
    );
    return handle;
  }

  private push(event: SseEvent): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.resolve({ value: event, done: false });
      return;
    }
    this.queue.push(event);
    if (this.queue.length - this.head >= HIGH_WATER_MARK) this.handle?.pause();
  }

  /** The failure's error the first time (null afterwards: the iterator is then just done). */
  private takeFailure(): unknown {
    const { error } = this.failure!;
    this.failure = { error: null };
    return error;
  }

  /** The stream stopped: a pending next() gets the failure or done. */
  private settle(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    const error = this.failure ? this.takeFailure() : null;
    if (error !== null) w.reject(error);
    else w.resolve(DONE);
  }
}
