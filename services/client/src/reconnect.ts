// EventSource-like reconnection policy (WHATWG HTML, "Server-sent events"): after a stream ends or
// a network error, wait the reconnection time (initially `retryMs`, replaced by the server's
// `retry:` field), then reconnect. The spec lets a user agent wait longer after failed attempts:
// on consecutive failures the delay grows exponentially with random jitter, capped at
// `maxBackoffMs`, never below the reconnection time; a successful open resets it.

/** Largest delay we will ever schedule (setTimeout's limit is 2^31-1 ms). */
const MAX_DELAY_MS = 2_147_483_647;
/** Starting point of the backoff when the reconnection time is shorter. */
const MIN_BACKOFF_MS = 100;

export interface ReconnectPolicyOptions {
  retryMs?: number;
  maxBackoffMs?: number;
  /** Random source in [0, 1) (tests pass a fixed one). */
  random?: () => number;
}

export class ReconnectPolicy {
  /** The event source's reconnection time in ms. */
  reconnectionTime: number;
  /** Failed attempts since the last successful open. */
  failures = 0;
  readonly maxBackoffMs: number;
  private readonly random: () => number;

  constructor(options: ReconnectPolicyOptions = {}) {
    this.reconnectionTime = clamp(options.retryMs ?? 3000);
    this.maxBackoffMs = clamp(options.maxBackoffMs ?? 30_000);
    this.random = options.random ?? Math.random;
  }

  /** The server sent `retry: ms`. */
  setRetry(ms: number): void {
    this.reconnectionTime = clamp(ms);
  }

  /** A connection was established (200 text/event-stream): the backoff starts over. */
  opened(): void {
    this.failures = 0;
  }

  /**
   * The delay before the next attempt. `failed` is true when the attempt that just ended never
   * opened a stream (refused, timed out, dropped before the headers).
   */
  nextDelay(failed: boolean): number {
    const base = this.reconnectionTime;
    if (!failed) return base;
    this.failures++;
    // Exponential ceiling, capped; the jitter spreads reconnect storms across [base, ceiling].
    // A zero reconnection time still backs off (from 100 ms) so a dead server is not hammered.
    const grown = Math.max(base, MIN_BACKOFF_MS) * 2 ** this.failures;
    const ceiling = Math.max(base, Math.min(this.maxBackoffMs, grown));
    return Math.round(base + this.random() * (ceiling - base));
  }
}

function clamp(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) return ms > 0 ? MAX_DELAY_MS : 0;
  return Math.min(Math.floor(ms), MAX_DELAY_MS);
}
