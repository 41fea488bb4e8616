// The servers' /metrics read every SAMPLE_MS during the storm: peak resident memory (summed over
// the targets at each sample) and the event-loop delay prom-client reports. Its
// nodejs_eventloop_lag_* gauges cover the time since the previous scrape (prom-client resets its
// histogram on each collect), so each sample is one short window's p99 and max.
// Half a second apart, not less: at 10,000 sockets one scrape costs the server ~10 ms of CPU (its
// default metrics list /proc/self/fd and every active handle), so sampling every 100 ms took ~10 %
// of the server's CPU in a storm (CPU profile, 6 Dec 2026) and the harness perturbed what it measured.
import { type Samples, sample, scrapeMetrics } from '../server-metrics.ts';

export const SAMPLE_MS = 500;

export interface SampledMetrics {
  samples: number;
  peakRssBytes: number | null;
  eventLoopLagP99MaxMs: number | null;
  eventLoopLagMaxMs: number | null;
}

const maxOf = (a: number | null, b: number | null) => (b === null ? a : Math.max(a ?? b, b));

export class MetricsSampler {
  private readonly bases: string[];
  private readonly timer: ReturnType<typeof setInterval>;
  private inFlight: Promise<void> | null = null;
  private readonly result: SampledMetrics = {
    samples: 0,
    peakRssBytes: null,
    eventLoopLagP99MaxMs: null,
    eventLoopLagMaxMs: null,
  };

  constructor(bases: string[]) {
    this.bases = bases;
    this.tick();
    this.timer = setInterval(() => this.tick(), SAMPLE_MS);
  }

  /** A scrape of every target, unless one is still in flight (the server busy). */
  private tick(): void {
    this.inFlight ??= this.scrape().finally(() => {
      this.inFlight = null;
    });
  }

  private async scrape(): Promise<void> {
    const all = await Promise.all(this.bases.map((b) => scrapeMetrics(b)));
    this.add(all);
  }

  /** One scrape of every target (the sampler's own, or one taken beside it). */
  add(all: (Samples | null)[]): void {
    const rss = all.map((s) => sample(s, 'process_resident_memory_bytes'));
    const r = this.result;
    r.samples++;
    if (rss.every((v) => v !== null)) r.peakRssBytes = maxOf(r.peakRssBytes, sum(rss));
    for (const s of all) {
      const p99 = sample(s, 'nodejs_eventloop_lag_p99_seconds');
      const max = sample(s, 'nodejs_eventloop_lag_max_seconds');
      r.eventLoopLagP99MaxMs = maxOf(r.eventLoopLagP99MaxMs, p99 === null ? null : p99 * 1000);
      r.eventLoopLagMaxMs = maxOf(r.eventLoopLagMaxMs, max === null ? null : max * 1000);
    }
  }

  /** Stops sampling (a scrape in flight gets a second to finish); the figures so far. */
  async stop(): Promise<SampledMetrics> {
    clearInterval(this.timer);
    if (this.inFlight) await Promise.race([this.inFlight, new Promise((r) => setTimeout(r, 1000))]);
    return { ...this.result };
  }
}

const sum = (values: (number | null)[]) => values.reduce<number>((n, v) => n + (v ?? 0), 0);
