// `connections`: ramps to N idle subscribers and reports the connect rate, failures and the
// server's memory per connection (resident and heap, from its /metrics).
import type { Figures, Report } from '../report/report.ts';
import { delta, type Samples, sample, scrapeMetrics } from '../server-metrics.ts';
import { SubscriberPool } from '../subscribers.ts';
import { progressBar } from './fanout.ts';

export interface ConnectionsOptions {
  base: string;
  subscribers: number;
  rampRate: number;
  channel: string;
  holdMs: number;
  progress: boolean;
}

/** Opens the pool at the ramp rate: how long that took, and how many opened in each second. */
async function openRamped(pool: SubscriberPool, options: ConnectionsOptions) {
  const bar = progressBar('connections', options.subscribers, options.progress);
  const openedPerSecond: number[] = [];
  const started = performance.now();
  await pool.open({
    url: `${options.base}/sse/channels/${options.channel}`,
    count: options.subscribers,
    rampRate: options.rampRate,
    onProgress: (n) => {
      bar.update(n);
      const second = Math.floor((performance.now() - started) / 1000);
      openedPerSecond[second] = (openedPerSecond[second] ?? 0) + 1;
    },
  });
  const seconds = (performance.now() - started) / 1000;
  bar.stop();
  return { seconds, openedPerSecond };
}

function connectionsFigures(
  pool: SubscriberPool,
  seconds: number,
  before: Samples | null,
  after: Samples | null,
): Figures {
  const rss = delta(before, after, 'process_resident_memory_bytes');
  const heap = delta(before, after, 'nodejs_heap_size_used_bytes');
  const per = (d: number | null) =>
    d === null || pool.opened === 0 ? null : d / pool.opened / 1024;
  return {
    opened: pool.opened,
    failed: pool.failed,
    connect_s: seconds,
    connect_rate_per_s: pool.opened / seconds,
    server_active_streams: sample(after, 'sse_connections_active{route="/sse/channels/:channel"}'),
    server_rss_before_bytes: sample(before, 'process_resident_memory_bytes'),
    server_rss_after_bytes: sample(after, 'process_resident_memory_bytes'),
    server_rss_per_connection_kb: per(rss),
    server_heap_per_connection_kb: per(heap),
  };
}

export async function runConnections(
  options: ConnectionsOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  const before = await scrapeMetrics(options.base);
  const pool = new SubscriberPool();
  const { seconds, openedPerSecond } = await openRamped(pool, options);
  await new Promise((r) => setTimeout(r, options.holdMs));
  const after = await scrapeMetrics(options.base);
  await pool.close();
  const warnings: string[] = [];
  if (pool.failed > 0) {
    warnings.push(
      `${pool.failed} connection(s) failed: ${JSON.stringify(Object.fromEntries(pool.errors))}`,
    );
  }
  return {
    scenario: 'connections',
    target: options.base,
    parameters: {
      subscribers: options.subscribers,
      ramp_rate_per_s: options.rampRate,
      hold_ms: options.holdMs,
    },
    figures: connectionsFigures(pool, seconds, before, after),
    series: {
      latency: [],
      latencyLabel: 'no latency in this scenario',
      throughput: Array.from(openedPerSecond, (value, second) => ({ second, value: value ?? 0 })),
      throughputLabel: 'connections opened per second',
    },
    warnings,
  };
}
