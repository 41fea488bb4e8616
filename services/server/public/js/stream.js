// One event stream read with fetch (not EventSource, so every event name arrives and a token can
// travel in a header): its connection state, its counters and its reconnections.
//
// States (`state`):
//   connecting  a request is under way
//   open        a 200 text/event-stream answer is being read
//   ended       the server ended the stream normally; it reconnects after `retry:`
//   refused     the server refused it: a notice (`overloaded`, `unavailable`, `shutdown`: it
//               reconnects after the notice's `retry:`), a 503/429 (after Retry-After), or a final
//               status (401, 403, 404, 400: no retry)
//   lost        the network failed or the connection broke; it reconnects after `retry:`, doubling
//               on each failure in a row up to 30 s
//   failed      a final error of the page's own (an event over the size bound, not an event stream)
//   stopped     closed by the page
// Every reconnection sends Last-Event-ID (the last id seen, or the start asked for), so nothing is
// missed; a `reset` says when the server cannot continue it.
import { explainNotice, explainStatus, NOTICE_EVENTS } from './explain.js';
import { seconds, utf8Bytes } from './format.js';
import { createEventParser } from './sse-parser.js';

const DEFAULT_RETRY_MS = 2000;
const MAX_BACKOFF_MS = 30_000;
const FINAL_STATUSES = new Set([400, 401, 403, 404, 405, 410]);

export class EventStream {
  /**
   * @param {{
   *   target: { key: string, url: string, channels: string[], channelOf: (e: object) => string },
   *   lastEventId: string | null,
   *   token: () => string,
   *   onEvent: (entry: object, stream: EventStream) => void,
   *   onChange: (stream: EventStream, note: string | null) => void,
   * }} options
   */
  constructor(options) {
    this.target = options.target;
    this.token = options.token;
    this.onEvent = options.onEvent;
    this.onChange = options.onChange;
    this.state = 'connecting';
    /** Words for the state (why refused, when the next attempt is). */
    this.detail = '';
    this.retryMs = DEFAULT_RETRY_MS;
    /** Date.now() of the next attempt, or 0. */
    this.nextAttemptAt = 0;
    this.counters = { events: 0, bytes: 0, reconnects: 0, resets: 0 };
    this.failures = 0;
    this.controller = null;
    this.timer = null;
    this.notice = null;
    this.tooLarge = false;
    this.parser = createEventParser({
      lastEventId: options.lastEventId ?? '',
      onEvent: (e) => this.received(e),
      onRetry: (ms) => {
        this.retryMs = ms;
      },
      onTooLarge: () => {
        this.tooLarge = true;
      },
    });
  }

  get lastEventId() {
    return this.parser.lastEventId;
  }

  start() {
    this.connect();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    const controller = this.controller;
    this.controller = null;
    controller?.abort();
    this.set('stopped', '', 'stopped watching');
  }

  set(state, detail, note = null) {
    this.state = state;
    this.detail = detail;
    this.onChange(this, note);
  }

  received(e) {
    const channel = this.target.channelOf(e);
    this.counters.events++;
    if (e.event === 'reset') this.counters.resets++;
    if (NOTICE_EVENTS.has(e.event)) this.notice = e;
    this.onEvent(
      {
        kind: 'event',
        channel,
        id: e.id,
        event: e.event,
        data: e.data,
        size: utf8Bytes(e.data),
        receivedAt: new Date(),
      },
      this,
    );
  }

  headers() {
    const headers = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
    const last = this.parser.lastEventId;
    if (last !== '') headers['Last-Event-ID'] = last;
    const token = this.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  async connect() {
    const controller = new AbortController();
    this.controller = controller;
    this.timer = null;
    this.nextAttemptAt = 0;
    this.notice = null;
    this.tooLarge = false;
    this.parser.reset();
    const last = this.parser.lastEventId;
    const from =
      last === ''
        ? 'live from now'
        : last === '0-0'
          ? 'from the oldest held'
          : `resuming after ${last}`;
    this.set('connecting', from);
    let res;
    try {
      res = await fetch(this.target.url, {
        headers: this.headers(),
        cache: 'no-store',
        signal: controller.signal,
      });
    } catch (err) {
      if (controller === this.controller)
        this.lost(`the server could not be reached (${err.message})`);
      return;
    }
    if (controller !== this.controller) return;
    const type = res.headers.get('content-type') ?? '';
    if (res.status !== 200) {
      await this.refusedByStatus(res, controller);
      return;
    }
    if (!type.startsWith('text/event-stream')) {
      controller.abort();
      this.final('failed', `the answer is ${type || 'untyped'}, not text/event-stream`);
      return;
    }
    this.failures = 0;
    this.set('open', from, `connected, ${from}`);
    await this.read(res, controller);
  }

  async read(res, controller) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.counters.bytes += value.byteLength;
        this.parser.feed(decoder.decode(value, { stream: true }));
        if (this.tooLarge) {
          controller.abort();
          this.final('failed', 'an event is larger than the console reads (17 MiB)');
          return;
        }
        this.onChange(this, null);
      }
      this.parser.feed(decoder.decode());
    } catch (err) {
      if (controller === this.controller) this.lost(`the connection broke (${err.message})`);
      return;
    }
    if (controller !== this.controller) return;
    if (this.notice !== null) {
      const { code, words } = explainNotice(this.notice.event, this.notice.data);
      this.retryLater('refused', `${code}: ${words}`, this.retryMs);
      return;
    }
    this.failures = 0;
    this.retryLater('ended', 'the server ended the stream', this.retryMs);
  }

  async refusedByStatus(res, controller) {
    const body = await res.json().catch(() => null);
    if (controller !== this.controller) return;
    const words = explainStatus(res.status, body);
    if (FINAL_STATUSES.has(res.status)) {
      this.final('refused', words);
      return;
    }
    const retryAfter = Number(res.headers.get('retry-after'));
    const delay = retryAfter > 0 ? retryAfter * 1000 : this.backoff();
    this.retryLater('refused', words, delay);
  }

  backoff() {
    this.failures++;
    const base = Math.max(this.retryMs, 1);
    return Math.min(Math.max(this.retryMs, MAX_BACKOFF_MS), base * 2 ** (this.failures - 1));
  }

  lost(why) {
    this.retryLater('lost', why, this.backoff());
  }

  final(state, words) {
    this.controller = null;
    this.set(state, words, `${state}: ${words}`);
  }

  retryLater(state, words, delay) {
    this.controller = null;
    this.nextAttemptAt = Date.now() + delay;
    this.timer = setTimeout(() => {
      this.counters.reconnects++;
      this.connect();
    }, delay);
    this.set(state, words, `${state}: ${words}; reconnecting in ${seconds(delay)}`);
  }
}
