// publish(): POST <base>/channels/<channel>/events with an Idempotency-Key, retrying what may
// succeed later (503, 429, 409 "in flight", network errors and timeouts) with the same key, so a
// retry never publishes twice; every other answer is final. Failures are PublishErrors.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { HEADER_VALUE } from '../../shared/cli.ts';
import {
  ERROR_BODY_READ_BYTES,
  ERROR_BODY_TIMEOUT_MS,
  explainErrorBody,
  oneLine,
  readBounded,
} from './error-body.ts';
import { fromTransportError, PublishError, type SseErrorReason } from './errors.ts';
import { MAX_DELAY_MS, parseRetryAfter, retryDelay } from './retry-delay.ts';
import { defaultDispatcher, discard } from './transport.ts';

/** One event: `data` is sent as is when a string, else as its JSON text. */
export interface PublishEvent {
  event?: string;
  data: unknown;
}

export interface PublishOptions {
  /** Sent as `Authorization: Bearer <token>` when given and not empty. */
  token?: string;
  /** 1 to 128 visible ASCII characters; default a random UUID, the same for every retry. */
  idempotencyKey?: string;
  /** Attempts after the first (default 5). */
  retries?: number;
  /** Backoff ceiling after the first failure in ms (default 250; it doubles per failure). */
  minDelayMs?: number;
  /** Longest wait between attempts in ms, Retry-After included (default 30000). */
  maxDelayMs?: number;
  /** Deadline of one attempt (connect, answer and its body) in ms; 0 = none (default 10000). */
  timeoutMs?: number;
  /** Aborting stops the request in progress or the wait (PublishError reason `aborted`). */
  signal?: AbortSignal;
  /** undici dispatcher; default the library's cached Agent (transport.ts). */
  dispatcher?: Dispatcher;
  /** Random source for the jitter, in [0, 1). */
  random?: () => number;
  /** Waits `ms` between attempts (tests pass their own); may reject when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface PublishResult {
  /** The success status (202). */
  status: number;
  /** The ids the events got ("<ms>-<seq>"), in order. */
  ids: string[];
  /** Subscribers the server wrote the events to. */
  subscribers: number;
  /** True when the server answered from its idempotency record (Idempotent-Replayed: true). */
  replayed: boolean;
  /** Requests sent, this one included. */
  attempts: number;
  idempotencyKey: string;
}

/** Channel names the server accepts (its rule is services/server/src/sse/channel-name.ts). */
export const CHANNEL_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
/** An Idempotency-Key: 1 to 128 visible ASCII characters (0x21-0x7E). */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;
/** Most bytes read from a success answer (the ids of a batch of up to 100000 events fit). */
export const ANSWER_READ_BYTES = 4 * 1024 * 1024;
/** How long to wait for a success answer's body (the attempt's timeoutMs usually ends it first). */
export const ANSWER_READ_TIMEOUT_MS = 30_000;

/** The parts of an attempt the final error reports. */
interface Failure {
  reason: SseErrorReason;
  message: string;
  retryable: boolean;
  status?: number;
  code?: string;
  serverMessage?: string;
  outcome?: string;
  retryAfterMs?: number;
  cause?: unknown;
}

type Attempt = { result: Omit<PublishResult, 'attempts' | 'idempotencyKey'> } | Failure;

/** Everything an attempt needs, fixed for one publish() call. */
interface Prepared {
  target: URL;
  headers: Record<string, string>;
  body: string;
  dispatcher: Dispatcher;
  timeoutMs: number;
  signal: AbortSignal | undefined;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  delay(ms, undefined, { signal });

/**
 * Publishes one event or a batch to `channel` on the server at `base` (e.g.
 * "http://127.0.0.1:24856"). Resolves with the server's answer; rejects with a PublishError.
 */
export async function publish(
  base: string | URL,
  channel: string,
  events: PublishEvent | readonly PublishEvent[],
  options: PublishOptions = {},
): Promise<PublishResult> {
  const key = options.idempotencyKey ?? randomUUID();
  const invalid = (message: string) =>
    new PublishError('invalid_argument', message, {
      url: String(base),
      fatal: true,
      attempts: 0,
      idempotencyKey: key,
    });
  const retries = integerOption('retries', options.retries, 5, invalid);
  const backoff = {
    minDelayMs: integerOption('minDelayMs', options.minDelayMs, 250, invalid),
    maxDelayMs: integerOption('maxDelayMs', options.maxDelayMs, 30_000, invalid),
    random: options.random ?? Math.random,
  };
  const request: Prepared = {
    target: publishUrl(base, channel, invalid),
    headers: requestHeaders(key, options.token, invalid),
    body: jsonBody(events, invalid),
    dispatcher: options.dispatcher ?? defaultDispatcher(),
    timeoutMs: integerOption('timeoutMs', options.timeoutMs, 10_000, invalid),
    signal: options.signal,
  };
  const sleep = options.sleep ?? defaultSleep;
  const signal = options.signal;
  const url = request.target.href;
  const aborted = (attempts: number) =>
    new PublishError('aborted', `publish aborted (${attemptsText(attempts, key)})`, {
      url,
      attempts,
      idempotencyKey: key,
      cause: signal?.reason,
    });

  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw aborted(attempt - 1);
    const outcome = await send(request);
    if ('result' in outcome) return { ...outcome.result, attempts: attempt, idempotencyKey: key };
    if (signal?.aborted) throw aborted(attempt);
    if (!outcome.retryable || attempt > retries) {
      throw new PublishError(outcome.reason, `${outcome.message} (${attemptsText(attempt, key)})`, {
        url,
        status: outcome.status,
        fatal: !outcome.retryable,
        cause: outcome.cause,
        attempts: attempt,
        idempotencyKey: key,
        code: outcome.code,
        serverMessage: outcome.serverMessage,
        outcome: outcome.outcome,
      });
    }
    try {
      await sleep(retryDelay(attempt, outcome.retryAfterMs, backoff), signal);
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
  }
}

function attemptsText(attempts: number, key: string): string {
  const n = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
  return `${n}, Idempotency-Key ${JSON.stringify(key)}`;
}

/** An integer option in [0, 2^31-1], or `fallback` when not given. */
function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  invalid: (message: string) => PublishError,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > MAX_DELAY_MS) {
    throw invalid(`${name} must be an integer from 0 to ${MAX_DELAY_MS}, got ${value}`);
  }
  return value;
}

/** <base>/channels/<channel>/events (a path in `base` is kept, e.g. behind a proxy). */
function publishUrl(
  base: string | URL,
  channel: string,
  invalid: (message: string) => PublishError,
): URL {
  const text = String(base);
  const target = URL.canParse(text) ? new URL(text) : null;
  if (target === null || (target.protocol !== 'http:' && target.protocol !== 'https:')) {
    throw invalid(
      `the base must be an absolute http:// or https:// URL, got ${JSON.stringify(text)}`,
    );
  }
  if (typeof channel !== 'string' || !CHANNEL_NAME.test(channel)) {
    throw invalid(
      `channel names are 1 to 128 characters of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(channel)}`,
    );
  }
  target.pathname = `${target.pathname.replace(/\/+$/, '')}/channels/${channel}/events`;
  target.hash = '';
  return target;
}

function requestHeaders(
  key: string,
  token: string | undefined,
  invalid: (message: string) => PublishError,
): Record<string, string> {
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
    throw invalid(
      `an Idempotency-Key is 1 to 128 visible ASCII characters (0x21-0x7E), got ${JSON.stringify(key)}`,
    );
  }
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    'idempotency-key': key,
  };
  if (token !== undefined && token !== '') {
    if (typeof token !== 'string' || !HEADER_VALUE.test(token)) {
      throw invalid('the token must not hold control characters');
    }
    headers.authorization = `Bearer ${token}`;
  }
  return headers;
}

function jsonBody(
  events: PublishEvent | readonly PublishEvent[],
  invalid: (message: string) => PublishError,
): string {
  let body: string | undefined;
  try {
    body = JSON.stringify(events);
  } catch (err) {
    throw invalid(`the events cannot be sent as JSON: ${(err as Error).message}`);
  }
  if (body === undefined || events === null || typeof events !== 'object') {
    throw invalid('events must be an object {"event"?, "data"} or an array of them');
  }
  return body;
}

/** One request: the parsed answer, or why it failed and whether to try again. */
async function send(request: Prepared): Promise<Attempt> {
  const { target, signal, timeoutMs } = request;
  const controller = new AbortController();
  let timedOut = false;
  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          controller.abort(new Error(`no answer within ${timeoutMs} ms`));
        }, timeoutMs)
      : undefined;
  const onAbort = (): void => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const timeout = (): Failure => ({
    reason: 'timeout',
    message: `no answer within ${timeoutMs} ms (timeoutMs)`,
    retryable: true,
  });
  try {
    let res: Dispatcher.ResponseData;
    try {
      res = await request.dispatcher.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        headers: request.headers,
        body: request.body,
        signal: controller.signal,
      });
    } catch (err) {
      if (timedOut) return timeout();
      const error = fromTransportError(err, target.href);
      return { reason: error.reason, message: error.message, retryable: true, cause: err };
    }
    const success = res.statusCode >= 200 && res.statusCode < 300;
    const maxBytes = success ? ANSWER_READ_BYTES : ERROR_BODY_READ_BYTES;
    const bytes = await readBounded(
      res.body,
      maxBytes,
      success ? ANSWER_READ_TIMEOUT_MS : ERROR_BODY_TIMEOUT_MS,
    );
    const ended = res.body.readableEnded;
    discard(res.body);
    if (timedOut) return timeout();
    return success ? accepted(res, bytes, ended, maxBytes) : refused(res, bytes);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

function statusLine(res: Dispatcher.ResponseData): string {
  return `HTTP status ${res.statusCode}${res.statusText ? ` ${res.statusText}` : ''}`;
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A 2xx: `{"ids": [...], "subscribers": N}`, else a protocol failure. */
function accepted(
  res: Dispatcher.ResponseData,
  bytes: Buffer,
  ended: boolean,
  maxBytes: number,
): Attempt {
  const status = res.statusCode;
  if (!ended && bytes.length < maxBytes) {
    // Published, but the answer was cut short: asking again with the same key replays it.
    return {
      reason: 'network',
      message: `${statusLine(res)}, but the connection broke before the answer was read`,
      retryable: true,
      status,
    };
  }
  const answer = parseJson(bytes) as { ids?: unknown; subscribers?: unknown } | undefined;
  const ids = answer?.ids;
  const subscribers = answer?.subscribers;
  if (
    !Array.isArray(ids) ||
    !ids.every((id) => typeof id === 'string') ||
    !Number.isSafeInteger(subscribers) ||
    (subscribers as number) < 0
  ) {
    const larger = bytes.length >= maxBytes ? ` (larger than ${maxBytes} bytes)` : '';
    return {
      reason: 'protocol',
      message: `${statusLine(res)}, but the answer is not {"ids": [...], "subscribers": N}${larger}`,
      retryable: false,
      status,
    };
  }
  const replayed = res.headers['idempotent-replayed'];
  return {
    result: {
      status,
      ids: ids as string[],
      subscribers: subscribers as number,
      replayed:
        String(replayed ?? '')
          .trim()
          .toLowerCase() === 'true',
    },
  };
}

/** A refusal: retryable for 503, 429 and 409 "idempotency_key_in_flight", final otherwise. */
function refused(res: Dispatcher.ResponseData, bytes: Buffer): Failure {
  const status = res.statusCode;
  const json = parseJson(bytes) as { error?: unknown; outcome?: unknown } | null | undefined;
  const text = (value: unknown) =>
    typeof value === 'string' ? oneLine(value).slice(0, 128) || undefined : undefined;
  const code = text(json?.error);
  const explanation = explainErrorBody(bytes);
  const retryable =
    status === 503 || status === 429 || (status === 409 && code === 'idempotency_key_in_flight');
  return {
    reason: 'http_status',
    message: `${statusLine(res)}${explanation ? `: ${explanation}` : ''}`,
    retryable,
    status,
    code,
    serverMessage: explanation || undefined,
    outcome: text(json?.outcome),
    retryAfterMs: parseRetryAfter(res.headers['retry-after']),
  };
}
