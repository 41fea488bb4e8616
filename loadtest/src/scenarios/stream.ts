// `stream`: autocannon drives N connections against the example's stream with no delay,
// /sse/test?count=10&interval_ms=0, and checks that every response holds all ten events.
import type autocannon from 'autocannon';
import { runCannon } from '../cannon.ts';
import type { Report } from '../report/report.ts';

export interface StreamOptions {
  base: string;
  connections: number;
  duration: number;
  progress: boolean;
}

export const STREAM_PATH = '/sse/test?count=10&interval_ms=0';
export const EVENTS_PER_STREAM = 10;

/** True when a response body holds the ten events of the example, in order, complete. */
export function completeStream(body: string): boolean {
  let at = 0;
  for (let n = 0; n < EVENTS_PER_STREAM; n++) {
    const event = `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
    if (body.startsWith(event, at)) at += event.length;
    else return false;
  }
  return at === body.length;
}

/**
 * autocannon against the stream, counting the requests sent and the responses completed.
 * autocannon silently reconnects and moves on when a response is cut short, so the difference
 * beyond the requests still in flight when the run stops (one per connection) is `cut`.
 */
async function cannonCountingCuts(options: StreamOptions) {
  let sent = 0;
  let done = 0;
  const { result, perSecond } = await runCannon(
    {
      url: `${options.base}${STREAM_PATH}`,
      connections: options.connections,
      duration: options.duration,
      verifyBody: (body) => completeStream(typeof body === 'string' ? body : String(body ?? '')),
      setupClient: (client) => {
        // 'request' is emitted by autocannon's client but missing from its type definitions.
        (client as unknown as import('node:events').EventEmitter).on('request', () => sent++);
        client.on('response', () => done++);
      },
    },
    options.progress,
  );
  return { result, perSecond, cut: Math.max(0, sent - done - options.connections) };
}

/** autocannon's whole-stream latency percentiles, for the chart. */
function latencySeries(latency: autocannon.Result['latency']) {
  return [
    { percentile: 50, ms: latency.p50 },
    { percentile: 75, ms: latency.p75 },
    { percentile: 90, ms: latency.p90 },
    { percentile: 97.5, ms: latency.p97_5 },
    { percentile: 99, ms: latency.p99 },
    { percentile: 99.9, ms: latency.p99_9 },
    { percentile: 100, ms: latency.max },
  ];
}

export async function runStream(
  options: StreamOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  const { result: r, perSecond, cut } = await cannonCountingCuts(options);
  const broken = r.mismatches + r.errors + r.timeouts + r.non2xx + cut;
  const completed = Math.max(0, r.requests.total - r.mismatches - r.non2xx);
  const seconds = r.duration;
  const warnings: string[] = [];
  if (broken > 0) {
    warnings.push(
      `${broken} stream(s) failed: ${r.mismatches} incomplete or wrong bodies, ${cut} cut short, ${r.errors} connection errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`,
    );
  }
  return {
    scenario: 'stream',
    target: options.base,
    parameters: {
      path: STREAM_PATH,
      connections: options.connections,
      duration_s: options.duration,
    },
    figures: {
      streams_completed: completed,
      streams_per_s: completed / seconds,
      events_per_s: (completed * EVENTS_PER_STREAM) / seconds,
      bytes_per_s: r.throughput.average,
      latency_p50_ms: r.latency.p50,
      latency_p90_ms: r.latency.p90,
      latency_p99_ms: r.latency.p99,
      latency_max_ms: r.latency.max,
      errors: broken,
      incomplete_streams: r.mismatches,
      cut_streams: cut,
      connection_errors: r.errors,
      timeouts: r.timeouts,
      non_2xx: r.non2xx,
    },
    series: {
      latency: latencySeries(r.latency),
      latencyLabel: 'whole-stream latency',
      throughput: perSecond.map((value, second) => ({ second, value })),
      throughputLabel: 'completed streams per second',
    },
    warnings,
  };
}
