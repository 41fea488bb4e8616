// The example stream's progress on one connection (/sse/test): the next index, where the stream
// ends, and the pacing timer of a paced stream. Kept as its own object, apart from the
// connection's transport and channel state.
export class DemoProgress {
  next: number;
  readonly count: number;
  readonly intervalMs: number;
  timer: NodeJS.Timeout | null = null;

  constructor(next: number, count: number, intervalMs = 0) {
    this.next = next;
    this.count = count;
    this.intervalMs = intervalMs;
  }

  get done(): boolean {
    return this.next >= this.count;
  }

  /** Clears the pacing timer (the stream closed). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
