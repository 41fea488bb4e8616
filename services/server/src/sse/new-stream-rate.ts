// limits.maxNewStreamsPerSecond: a token bucket over new streams, so that a reconnect storm (every
// client of a restarted server coming back at once, each wanting its replay) spreads itself over
// time instead of stalling everyone. The bucket holds one second's worth of streams. A stream
// refused for it is told to come back after the time the streams refused in the last second need
// at this rate (at least 1 s, at most 60 s); the notice jitters it, so they return spread out.
export class NewStreamRate {
  private readonly perSecond: number;
  private readonly now: () => number;
  private tokens: number;
  private filledAt: number;
  /** Streams refused since windowStart, and in the whole window before it. */
  private refused = 0;
  private refusedBefore = 0;
  private windowStart: number;

  /** `perSecond` 0: no limit. */
  constructor(perSecond: number, now: () => number = () => performance.now()) {
    this.perSecond = perSecond;
    this.now = now;
    this.tokens = perSecond;
    this.filledAt = this.windowStart = now();
  }

  /** True when a new stream may open now (it takes its token); false: refuse it. */
  take(): boolean {
    if (this.perSecond === 0) return true;
    const now = this.now();
    this.tokens = Math.min(
      this.perSecond,
      this.tokens + ((now - this.filledAt) * this.perSecond) / 1000,
    );
    this.filledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (now - this.windowStart >= 1000) {
      this.refusedBefore = now - this.windowStart >= 2000 ? 0 : this.refused;
      this.refused = 0;
      this.windowStart = now;
    }
    this.refused++;
    return false;
  }

  /** Seconds a refused stream should wait: the last second's refusals at this rate, 1 to 60. */
  retryAfterSeconds(): number {
    const backlog = Math.max(this.refused, this.refusedBefore);
    return Math.min(60, Math.max(1, Math.ceil(backlog / Math.max(1, this.perSecond))));
  }
}
