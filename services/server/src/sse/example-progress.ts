// The example stream's progress on one connection (/sse/test, the tRPC-Cpp example): the next
// index, where the stream ends, and the pacing timer of a paced stream, stopped when the stream
// closes.
import type { StreamOwner } from './connection.ts';

export class ExampleProgress implements StreamOwner {
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

  /** The stream closed: the pacing timer stops. */
  streamClosed(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
