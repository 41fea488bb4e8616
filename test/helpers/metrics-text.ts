// The server's /metrics as numbers: `name{labels}` -> value (the text exposition, parsed).

export type MetricSample = Map<string, number>;

export async function scrapeMetrics(base: string, timeoutMs = 5000): Promise<MetricSample> {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  const out: MetricSample = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** One sample's value (`sse_broker_up`, `sse_connections_active{route="..."}`); 0 when absent. */
export async function metricValue(base: string, key: string): Promise<number> {
  return (await scrapeMetrics(base)).get(key) ?? 0;
}

export const SLOW_CONSUMERS = 'sse_slow_consumer_disconnects_total';
export const CHANNEL_STREAMS = 'sse_connections_active{route="/sse/channels/:channel"}';
