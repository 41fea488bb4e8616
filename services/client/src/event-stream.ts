// Library core: an EventSource-like stream of events over transport.ts + parser.ts.
// connectEventStream is the callback API (one closure set per stream, nothing allocated per event
// beyond the parser's own event object), for consumers that hold thousands of streams;
// openEventStream wraps it as an async iterable with backpressure.
import type { Dispatcher } from 'undici';
import { fromTransportError, SseClientError } from './errors.ts';
import { createEventParser, type SseEvent } from './parser.ts';
import { ReconnectPolicy } from './reconnect.ts';
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
  /** Bound on one buffered line/event in characters (default 1 MiB); exceeding it is fatal. */
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

/** Opens an event stream and calls `onEvent` for each event. Never throws after the URL check. */
export function connectEventStream(url: string | URL, options: ConnectOptions): EventStreamHandle {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new TypeError(`unsupported URL scheme ${target.protocol} (expected http: or https:)`);
  }
  const href = target.href;
  const reconnect = options.reconnect ?? false;
  const headers = baseHeaders(options.headers);
  const controller = new AbortController();
  const userSignal = options.signal;
  const policy = new ReconnectPolicy({
    retryMs: options.retryMs,
    maxBackoffMs: options.maxBackoffMs,
    random: options.random,
  });

  let closed = false;
  let connected = false;
  let paused = false;
  let body: Body | null = null;
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  let tooLarge: SseClientError | null = null;
  let callbackError: unknown = null;

  const userOnEvent = options.onEvent;
  const parser = createEventParser({
    maxEventBytes: options.maxEventBytes,
    lastEventId: options.lastEventId,
    onEvent(event) {
      // Events later in a chunk that was already being parsed when close() ran are dropped.
      if (!closed) userOnEvent(event);
    },
    onRetry(ms) {
      policy.setRetry(ms);
      options.onRetry?.(ms);
    },
    onTooLarge(limit) {
      tooLarge = new SseClientError(
        'too_large',
        `an event or line exceeded the maxEventBytes limit of ${limit}`,
        { url: href, fatal: true },
      );
      body?.destroy(tooLarge);
    },
  });

  const onData = (chunk: Buffer): void => {
    try {
      parser.feed(chunk);
    } catch (err) {
      callbackError = err;
      body?.destroy(err as Error);
    }
  };

  function close(): void {
    if (closed) return;
    closed = true;
    controller.abort();
    if (timer) clearTimeout(timer);
    wake?.();
  }

  function pump(stream: Body): Promise<void> {
    return new Promise((resolve, reject) => {
      stream.on('data', onData);
      stream.once('end', resolve);
      stream.on('error', reject);
      stream.once('close', resolve); // destroyed without an error: treat as the end
      if (paused) stream.pause();
    });
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });
  }

  function closedResult(): CloseResult {
    return { reason: 'closed', lastEventId: parser.lastEventId };
  }

  async function run(): Promise<CloseResult> {
    let attempt = 0;
    for (;;) {
      if (closed) return closedResult();
      attempt++;
      parser.reset();
      tooLarge = null;
      let opened = false;
      let error: SseClientError | null = null;
      const sentId = parser.lastEventId;
      try {
        const res = await openStream(target, headers, {
          lastEventId: sentId,
          signal: controller.signal,
          timeoutMs: options.timeoutMs,
          connectTimeoutMs: options.connectTimeoutMs,
          dispatcher: options.dispatcher,
        });
        if (res.status === 204) return { reason: 'no_content', lastEventId: parser.lastEventId };
        if (closed) {
          discard(res.body);
          return closedResult();
        }
        opened = true;
        connected = true;
        body = res.body;
        policy.opened();
        options.onOpen?.({ url: href, attempt, lastEventId: sentId });
        try {
          await pump(res.body);
        } finally {
          body = null;
          connected = false;
          discard(res.body);
          options.onDisconnect?.();
        }
      } catch (err) {
        if (callbackError !== null) throw callbackError;
        if (closed) return closedResult();
        error = tooLarge ?? fromTransportError(err, href);
      }
      if (callbackError !== null) throw callbackError;
      if (closed) return closedResult();
      if (error === null && !reconnect) return { reason: 'end', lastEventId: parser.lastEventId };
      if (error !== null && (error.fatal || !reconnect)) {
        options.onError?.(error, false);
        return { reason: 'error', error, lastEventId: parser.lastEventId };
      }
      if (error !== null) options.onError?.(error, true);
      const delayMs = policy.nextDelay(!opened);
      options.onReconnect?.({
        url: href,
        attempt: attempt + 1,
        delayMs,
        lastEventId: parser.lastEventId,
      });
      await sleep(delayMs);
      timer = null;
      wake = null;
    }
  }

  if (userSignal?.aborted) close();
  else userSignal?.addEventListener('abort', close, { once: true });

  const done = run().then(
    (result) => {
      closed = true;
      userSignal?.removeEventListener('abort', close);
      options.onClose?.(result);
      return result;
    },
    (err: unknown) => {
      closed = true;
      controller.abort();
      userSignal?.removeEventListener('abort', close);
      throw err;
    },
  );

  return {
    close,
    done,
    get lastEventId() {
      return parser.lastEventId;
    },
    get connected() {
      return connected;
    },
    pause() {
      paused = true;
      body?.pause();
    },
    resume() {
      paused = false;
      body?.resume();
    },
  };
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
  let queue: SseEvent[] = [];
  let head = 0;
  let handle: EventStreamHandle | null = null;
  let result: CloseResult | undefined;
  let failure: { error: unknown } | null = null;
  let waiter: {
    resolve(r: IteratorResult<SseEvent>): void;
    reject(err: unknown): void;
  } | null = null;
  let closedEarly = false;

  const settle = (): void => {
    const w = waiter;
    if (!w) return;
    waiter = null;
    if (failure) {
      const { error } = failure;
      failure = { error: null };
      if (error !== null) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    } else w.resolve({ value: undefined, done: true });
  };

  const start = (): EventStreamHandle => {
    const h = connectEventStream(url, {
      ...options,
      onEvent(event) {
        if (waiter) {
          const w = waiter;
          waiter = null;
          w.resolve({ value: event, done: false });
          return;
        }
        queue.push(event);
        if (queue.length - head >= HIGH_WATER_MARK) handle?.pause();
      },
    });
    h.done.then(
      (r) => {
        result = r;
        if (r.reason === 'error') failure = { error: r.error };
        settle();
      },
      (err: unknown) => {
        failure = { error: err };
        settle();
      },
    );
    return h;
  };

  const iterator: EventStreamIterable = {
    next(): Promise<IteratorResult<SseEvent>> {
      if (closedEarly) return Promise.resolve({ value: undefined, done: true });
      handle ??= start();
      if (head < queue.length) {
        const value = queue[head++]!;
        if (head === queue.length) {
          queue = [];
          head = 0;
          handle.resume();
        }
        return Promise.resolve({ value, done: false });
      }
      if (failure) {
        const { error } = failure;
        failure = { error: null };
        return error !== null
          ? Promise.reject(error)
          : Promise.resolve({ value: undefined, done: true });
      }
      if (result) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
      });
    },
    return(): Promise<IteratorResult<SseEvent>> {
      iterator.close();
      return Promise.resolve({ value: undefined, done: true });
    },
    close(): void {
      closedEarly = true;
      handle?.close();
      queue = [];
      head = 0;
      const w = waiter;
      waiter = null;
      w?.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
    get lastEventId() {
      return handle?.lastEventId ?? options.lastEventId ?? '';
    },
    get result() {
      return result;
    },
  };
  return iterator;
}
