// Reads the server's Prometheus exposition: plain samples and histogram quantiles.

export type Samples = Map<string, number>;

/** Fetches and parses `<base>/metrics` into `name{labels}` -> value; null when unavailable. */
export async function scrapeMetrics(base: string): Promise<Samples | null> {
  try {
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return null;
    return parseExposition(await res.text());
  } catch {
    return null;
  }
}

export function parseExposition(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (at > 0) out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

export const sample = (s: Samples | null, key: string): number | null => s?.get(key) ?? null;

/** The difference of one sample between two scrapes, or null. */
export function delta(before: Samples | null, after: Samples | null, key: string): number | null {
  const a = sample(before, key);
  const b = sample(after, key);
  return a === null || b === null ? null : b - a;
}

/**
 * A quantile of a histogram's observations between two scrapes, by linear interpolation inside
 * the bucket (as PromQL's histogram_quantile does). Null when nothing was observed.
 */
export function histogramQuantile(
  before: Samples | null,
  after: Samples | null,
  name: string,
  q: number,
): number | null {
  if (after === null) return null;
  const buckets: { le: number; count: number }[] = [];
  for (const [key, value] of after) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
    buckets.push({ le, count: value - (before?.get(key) ?? 0) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Number.POSITIVE_INFINITY) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket <= 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
