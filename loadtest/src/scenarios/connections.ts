// `connections`: ramps to N idle subscribers and reports the connect rate, failures and the
// server's memory per connection (resident and heap, from its /metrics).
import type { Report } from '../report/report.ts';
import { delta, sample, scrapeMetrics } from '../server-metrics.ts';
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

export async function runConnections(
  options: ConnectionsOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  const before = await scrapeMetrics(options.base);
  const pool = new SubscriberPool();
  const bar = progressBar('connections', options.subscribers, options.progress);
  const opened: number[] = [];
  const started = performance.now();
  await pool.open({
    url: `${options.base}/sse/channels/${options.channel}`,
    count: options.subscribers,
    rampRate: options.rampRate,
    onProgress: (n) => {
      bar.update(n);
      const second = Math.floor((performance.now() - started) / 1000);
      opened[second] = (opened[second] ?? 0) + 1;
    },
  });
  const seconds = (performance.now() - started) / 1000;
  bar.stop();
  await new Promise((r) => setTimeout(r, options.holdMs));
  const after = await scrapeMetrics(options.base);
  await pool.close();
  const rss = delta(before, after, 'process_resident_memory_bytes');
  const heap = delta(before, after, 'nodejs_heap_size_used_bytes');
  const per = (d: number | null) =>
    d === null || pool.opened === 0 ? null : d / pool.opened / 1024;
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
    figures: {
      opened: pool.opened,
      failed: pool.failed,
      connect_s: seconds,
      connect_rate_per_s: pool.opened / seconds,
      server_active_streams: sample(
        after,
        'sse_connections_active{route="/sse/channels/:channel"}',
      ),
      server_rss_before_bytes: sample(before, 'process_resident_memory_bytes'),
      server_rss_after_bytes: sample(after, 'process_resident_memory_bytes'),
      server_rss_per_connection_kb: per(rss),
      server_heap_per_connection_kb: per(heap),
    },
    series: {
      latency: [],
      latencyLabel: 'no latency in this scenario',
      throughput: Array.from(opened, (value, second) => ({ second, value: value ?? 0 })),
      throughputLabel: 'connections opened per second',
    },
    warnings,
  };
}
