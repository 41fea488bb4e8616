// Which sequence numbers one subscriber has received, whatever their order: a contiguous prefix
// (every seq below `next`) plus the few seen above it. Memory stays small while events arrive
// roughly in order; a lost event leaves a hole that keeps later seqs in the set until `forget`.

export class SeqTracker {
  private next = 0;
  private readonly above = new Set<number>();

  /** Records `seq`; false when it had been received already (a duplicate). */
  add(seq: number): boolean {
    if (seq < this.next || this.above.has(seq)) return false;
    if (seq === this.next) {
      this.next++;
      while (this.above.delete(this.next)) this.next++;
    } else this.above.add(seq);
    return true;
  }

  has(seq: number): boolean {
    return seq < this.next || this.above.has(seq);
  }

  /** How many seqs in [from, to) were received. */
  countIn(from: number, to: number): number {
    let n = Math.max(0, Math.min(this.next, to) - from);
    for (const s of this.above) if (s >= from && s < to && s >= this.next) n++;
    return n;
  }

  /** Treats every seq below `to` as settled (after a step is counted): frees the holes. */
  forget(to: number): void {
    if (to <= this.next) return;
    for (const s of this.above) if (s < to) this.above.delete(s);
    this.next = to;
    while (this.above.delete(this.next)) this.next++;
  }
}
