// limits.maxNewStreamsPerSecond: a token bucket over new streams, so that a reconnect storm (every
// client of a restarted server coming back at once, each wanting its replay) spreads itself over
// time instead of stalling everyone. The bucket holds one second's worth of streams. A refused
// stream is told to come back after 1 s (jittered to 0.5-1.5 s in the notice): N clients at rate R
// are all in after about N / R seconds, each refusal costing the server one small answer.
// (A Retry-After grown with the refused backlog was tried first: the clients' retries counted as
// backlog too, the delay went to the 60 s cap, and a 10,000-client storm ended later, not sooner.)
export class NewStreamRate {
  private readonly perSecond: number;
  private readonly now: () => number;
  private tokens: number;
  private filledAt: number;
  /** `perSecond` 0: no limit. */
  constructor(perSecond: number, now: () => number = () => performance.now()) {
    this.perSecond = perSecond;
    this.now = now;
    this.tokens = perSecond;
    this.filledAt = now();
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
    return false;
  }
}
