// `fanout`, the critical write path: N subscribers (the project's client library) hold a channel
// open while autocannon publishes at a fixed rate; payloads carry their publish time, so the
// subscribers measure delivery latency, and every subscriber is checked for lost or duplicated
// events. The server's own fan-out histogram and memory come from its /metrics.
import { SingleBar } from 'cli-progress';
import { runCannon } from '../cannon.ts';
import type { Report } from '../report/report.ts';
import { delta, histogramQuantile, sample, scrapeMetrics } from '../server-metrics.ts';
import { SubscriberPool } from '../subscribers.ts';

export interface FanoutOptions {
  base: string;
  subscribers: number;
  rate: number;
  duration: number;
  connections: number;
  channel: string;
  payloadBytes: number;
  drainMs: number;
  token: string;
  progress: boolean;
}

export function progressBar(label: string, total: number, enabled: boolean) {
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} {duration_formatted}`,
    stream: process.stderr,
    noTTYOutput: false,
    hideCursor: true,
    clearOnComplete: false,
  });
  if (enabled) bar.start(total, 0);
  return {
    update: (n: number) => enabled && bar.update(n),
    stop: () => enabled && bar.stop(),
  };
}

export async function runFanout(
  options: FanoutOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  // A fresh channel per run: no history from earlier runs, ids counted from its first event.
  const channel = `${options.channel}-${Date.now().toString(36)}`;
  const before = await scrapeMetrics(options.base);
  const pool = new SubscriberPool();
  const bar = progressBar('subscribers', options.subscribers, options.progress);
  const openStarted = performance.now();
  await pool.open({
    url: `${options.base}/sse/channels/${channel}`,
    count: options.subscribers,
    onProgress: bar.update,
  });
  bar.stop();
  const openSeconds = (performance.now() - openStarted) / 1000;
  const idle = await scrapeMetrics(options.base);

  let seq = 0;
  let minId = Number.POSITIVE_INFINITY;
  let maxId = 0;
  let ids = 0;
  const pad = 'x'.repeat(options.payloadBytes);
  pool.startRecording();
  const { result: r } = await runCannon(
    {
      url: `${options.base}/channels/${channel}/events`,
      method: 'POST',
      connections: options.connections,
      overallRate: options.rate,
      duration: options.duration,
      headers: {
        'content-type': 'application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      requests: [
        {
          setupRequest: (req) => {
            const ts = performance.timeOrigin + performance.now();
            req.body = JSON.stringify({ data: { ts, seq: seq++, pad } });
            return req;
          },
          onResponse: (status, body) => {
            if (status !== 202) return;
            for (const id of (JSON.parse(body) as { ids: number[] }).ids) {
              ids++;
              if (id < minId) minId = id;
              if (id > maxId) maxId = id;
            }
          },
        },
      ],
    },
    options.progress,
  );
  // autocannon does not hand every answer to onResponse (not those still in flight when it
  // stops), yet those events were published all the same: the ids the subscribers saw widen the
  // range, and a gap inside it is still a loss.
  const range = () => {
    const low = pool.lowestId;
    return {
      min: low > 0 ? Math.min(minId, low) : minId,
      max: Math.max(maxId, pool.highestId),
    };
  };
  const expectedNow = () => (range().max - range().min + 1) * pool.opened;
  // Drain: wait until every subscriber has every event of the range and nothing new arrived for
  // a moment (answers to publishes still in flight may come after autocannon's end).
  const drainUntil = Date.now() + options.drainMs;
  let seen = -1;
  let quietSince = Date.now();
  while (ids > 0 && Date.now() < drainUntil) {
    const now = pool.deliveries;
    if (now !== seen) {
      seen = now;
      quietSince = Date.now();
    } else if (now >= expectedNow() && Date.now() - quietSince >= 300) {
      break;
    }
    await new Promise((res) => setTimeout(res, 25));
  }
  if (ids > 0) ({ min: minId, max: maxId } = range());
  const published = ids > 0 ? maxId - minId + 1 : 0;
  const expected = published * pool.opened;
  const after = await scrapeMetrics(options.base);
  const stats = pool.stats(published > 0 ? { min: minId, max: maxId } : null);
  await pool.close();

  const warnings: string[] = [];
  if (stats.lost > 0 || stats.duplicated > 0) {
    warnings.push(`EVENTS LOST: ${stats.lost}, DUPLICATED: ${stats.duplicated} (both must be 0)`);
  }
  if (pool.failed > 0) {
    warnings.push(
      `${pool.failed} subscriber(s) failed to connect: ${JSON.stringify(Object.fromEntries(pool.errors))}`,
    );
  }
  const publishErrors = r.errors + r.timeouts + r.non2xx;
  if (publishErrors > 0) warnings.push(`${publishErrors} publish request(s) failed`);
  const cpu = delta(idle, after, 'process_cpu_seconds_total');
  const fanoutCount = delta(before, after, 'sse_fanout_duration_seconds_count');
  const fanoutSum = delta(before, after, 'sse_fanout_duration_seconds_sum');
  const seconds = r.duration;
  const latency = stats.latencyMs;
  const ms = (s: number | null) => (s === null ? null : s * 1000);

  return {
    scenario: 'fanout',
    target: options.base,
    parameters: {
      subscribers: options.subscribers,
      rate_per_s: options.rate,
      duration_s: options.duration,
      publish_connections: options.connections,
      payload_pad_bytes: options.payloadBytes,
      channel,
    },
    figures: {
      subscribers_open: pool.opened,
      subscribers_failed: pool.failed,
      subscribers_open_s: openSeconds,
      published,
      publish_errors: publishErrors,
      publish_latency_p50_ms: r.latency.p50,
      publish_latency_p99_ms: r.latency.p99,
      deliveries: stats.deliveries,
      deliveries_expected: expected,
      deliveries_per_s: stats.deliveries / seconds,
      delivery_latency_p50_ms: latency?.p50 ?? null,
      delivery_latency_p90_ms: latency?.p90 ?? null,
      delivery_latency_p99_ms: latency?.p99 ?? null,
      delivery_latency_max_ms: latency?.max ?? null,
      lost: stats.lost,
      duplicated: stats.duplicated,
      server_fanout_p50_ms: ms(
        histogramQuantile(before, after, 'sse_fanout_duration_seconds', 0.5),
      ),
      server_fanout_p99_ms: ms(
        histogramQuantile(before, after, 'sse_fanout_duration_seconds', 0.99),
      ),
      server_fanout_mean_ms:
        fanoutCount && fanoutSum !== null ? (fanoutSum / fanoutCount) * 1000 : null,
      // Server CPU while publishing, over the deliveries the subscribers counted (the same
      // denominator for any server, whatever its own metrics).
      server_cpu_per_delivery_us:
        cpu !== null && stats.deliveries > 0 ? (cpu * 1e6) / stats.deliveries : null,
      server_rss_before_bytes: sample(before, 'process_resident_memory_bytes'),
      server_rss_after_bytes: sample(after, 'process_resident_memory_bytes'),
      server_heap_after_bytes: sample(after, 'nodejs_heap_size_used_bytes'),
      server_rss_per_idle_connection_kb: (() => {
        const d = delta(before, idle, 'process_resident_memory_bytes');
        return d === null || pool.opened === 0 ? null : d / pool.opened / 1024;
      })(),
    },
    series: {
      latency: stats.distribution,
      latencyLabel: 'delivery latency (publish -> subscriber)',
      throughput: stats.perSecond.map((value, second) => ({ second, value })),
      throughputLabel: 'deliveries per second',
    },
    warnings,
  };
}
