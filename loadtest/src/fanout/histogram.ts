// The fan-out rig's latency histograms: HDR, in microseconds from 1 us to 600 s with three
// significant digits; built in the publisher and the workers, sent encoded, merged in the rig.
import * as hdr from 'hdr-histogram-js';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export function newLatencyHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** The encoded histograms added up into a new one (the caller destroys it). */
export function mergeEncoded(encoded: string[]): hdr.Histogram {
  const total = newLatencyHistogram();
  for (const e of encoded) {
    const h = hdr.decodeFromCompressedBase64(e);
    total.add(h);
    h.destroy();
  }
  return total;
}

/** The usual percentiles and the max, in ms; null when nothing was recorded. */
export function percentiles(h: hdr.Histogram): Percentiles | null {
  if (h.totalCount === 0) return null;
  const ms = (p: number) => h.getValueAtPercentile(p) / 1000;
  return {
    p50: ms(50),
    p90: ms(90),
    p99: ms(99),
    p999: ms(99.9),
    max: h.maxValue / 1000,
  };
}

const CHART_PERCENTILES = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100];

/** [percentile, ms] for the latency chart; empty when nothing was recorded. */
export function distribution(h: hdr.Histogram): { percentile: number; ms: number }[] {
  if (h.totalCount === 0) return [];
  return CHART_PERCENTILES.map((p) => ({ percentile: p, ms: h.getValueAtPercentile(p) / 1000 }));
}
