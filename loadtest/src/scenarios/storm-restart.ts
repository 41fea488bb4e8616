// The restart storm (`--scenario storm --bench`, and the tests with servers of their own): N live
// subscribers (raw sockets in worker processes, storm/resuming-subscriber.ts) on a fresh channel
// take one event (seq 0); then the server is restarted (stopped gracefully: its streams end with a
// jittered `retry:`; started again on the same port) and K events (seq 1..K) are published to it as
// soon as it is ready. Every subscriber reconnects by itself, EventSource-like, with its last id as
// Last-Event-ID, and must get seq 1..K once, in order, byte for byte. With the Redis broker the
// record survives the restart; with the memory broker it does not, and every subscriber is told so
// with an `event: reset` (counted on its own) before the new record. Reports when the first and the
// last subscriber had all K (from the SIGTERM), each one's replay time and wait, the attempts
// refused and the subscribers that retried, lost/duplicated/out of order/corrupted, and the
// restarted server's own counts, peak memory and event-loop delay.
import { fileURLToPath } from 'node:url';
import { distribution, mergeEncoded, percentiles } from '../fanout/histogram.ts';
import { IpcChild } from '../fanout/ipc.ts';
import { checkWorkerShare, defaultWorkers } from '../fanout/rig.ts';
import { log as stderrLog } from '../output.ts';
import type { Figures, Report } from '../report/report.ts';
import { sample, scrapeMetrics } from '../server-metrics.ts';
import { workerUrls } from '../storm/crew.ts';
import { publishHistory } from '../storm/history.ts';
import { listenQueueFigures, listenQueueWarnings, readListenQueue } from '../storm/listen-queue.ts';
import { MetricsSampler } from '../storm/metrics-sampler.ts';
import type {
  RestartProgress,
  RestartReply,
  RestartRequest,
  RestartStats,
} from '../storm/restart-protocol.ts';
import { stormHarnessLimits } from './storm.ts';

const WORKER = fileURLToPath(new URL('../storm/restart-worker.ts', import.meta.url));

/** A server the storm can restart: the same base URL (port) before and after. */
export interface RestartableServer {
  base: string;
  /** Starts it (again) and resolves once it listens. */
  start(): Promise<void>;
  /** Stops it gracefully (SIGTERM, or the in-process shutdown) and resolves once it is gone. */
  stop(): Promise<void>;
}

export interface StormRestartOptions {
  /** Already started; restarted once; left running. */
  server: RestartableServer;
  subscribers: number;
  /** K: the events published after the restart. */
  history: number;
  eventBytes: number;
  workers?: number;
  /** Subscribers not served this many seconds after the SIGTERM are not served. */
  timeoutS: number;
  channel: string;
  token: string;
  /** What the report calls the server (e.g. `ours-redis`). */
  label?: string;
  /** The server loses its record when it restarts (memory broker): resets are expected. */
  expectResets: boolean;
  log?: (line: string) => void;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long the live phase (opening, the live event reaching everyone) may take. */
const LIVE_TIMEOUT_MS = 60_000;
const POLL_MS = 100;

class RestartCrew {
  private readonly workers: IpcChild<RestartRequest, RestartReply>[];
  private readonly urls: string[][];

  constructor(urls: string[][]) {
    this.urls = urls;
    this.workers = urls.map((_, i) => new IpcChild(WORKER, `restart worker ${i}`));
  }

  get size(): number {
    return this.workers.length;
  }

  private async all(req: (i: number) => RestartRequest): Promise<RestartReply[]> {
    return Promise.all(this.workers.map((w, i) => w.request(req(i))));
  }

  async open(history: number, eventBytes: number) {
    const replies = await this.all((i) => ({
      type: 'open',
      urls: this.urls[i]!,
      history,
      eventBytes,
    }));
    let opened = 0;
    const failed: Record<string, number> = {};
    for (const r of replies) {
      if (r.type !== 'opened') continue;
      opened += r.opened;
      addCounts(failed, r.failed);
    }
    return { opened, failed };
  }

  async progress(): Promise<RestartProgress> {
    const total: RestartProgress = { live: 0, dropped: 0, served: 0, settled: 0 };
    for (const r of await this.all(() => ({ type: 'progress' }))) {
      if (r.type !== 'progress') continue;
      total.live += r.progress.live;
      total.dropped += r.progress.dropped;
      total.served += r.progress.served;
      total.settled += r.progress.settled;
    }
    return total;
  }

  async ids(ids: string[]): Promise<void> {
    await this.all(() => ({ type: 'ids', ids }));
  }

  async collect(): Promise<RestartStats[]> {
    const replies = await this.all(() => ({ type: 'collect' }));
    return replies
      .filter((r): r is Extract<RestartReply, { type: 'stats' }> => r.type === 'stats')
      .map((r) => r.stats);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ type: 'close' }).catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.kill()));
  }
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Polls `done` every POLL_MS until it holds or `deadline` (epoch ms) passes; true when it held. */
async function until(done: () => Promise<boolean>, deadline: number): Promise<boolean> {
  for (;;) {
    if (await done()) return true;
    if (now() >= deadline) return false;
    await sleep(POLL_MS);
  }
}

/** Waits until `base`/readyz answers 200 (the broker up), at most `ms`; false when it never did. */
async function ready(base: string, ms: number): Promise<boolean> {
  return until(async () => {
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  }, now() + ms);
}

/** The workers' stats added up. */
function addUp(all: RestartStats[]) {
  const sum = (key: keyof RestartStats) => all.reduce((n, s) => n + (s[key] as number), 0);
  const pick = (
    key: 'firstDropAt' | 'lastDropAt' | 'firstServedAt' | 'lastServedAt',
    max: boolean,
  ) =>
    all.reduce<number | null>((v, s) => {
      const x = s[key];
      if (x === null) return v;
      if (v === null) return x;
      return max ? Math.max(v, x) : Math.min(v, x);
    }, null);
  const openFailed: Record<string, number> = {};
  const refused: Record<string, number> = {};
  const reset: Record<string, number> = {};
  for (const s of all) {
    addCounts(openFailed, s.openFailed);
    addCounts(refused, s.refused);
    addCounts(reset, s.reset);
  }
  const full = mergeEncoded(all.map((s) => s.fullReplay));
  const wait = mergeEncoded(all.map((s) => s.reconnectWait));
  const totals = {
    subscribers: sum('subscribers'),
    opened: sum('opened'),
    live: sum('live'),
    dropped: sum('dropped'),
    served: sum('served'),
    attempts: sum('attempts'),
    retried: sum('retried'),
    replayed: sum('replayed'),
    shared: sum('shared'),
    lost: sum('lost'),
    duplicated: sum('duplicated'),
    outOfOrder: sum('outOfOrder'),
    corrupted: sum('corrupted'),
    openFailed,
    refused,
    reset,
    firstDropAt: pick('firstDropAt', false),
    lastDropAt: pick('lastDropAt', true),
    firstServedAt: pick('firstServedAt', false),
    lastServedAt: pick('lastServedAt', true),
    fullReplayMs: percentiles(full),
    fullReplayDistribution: distribution(full),
    reconnectWaitMs: percentiles(wait),
    loads: all.map((s) => s.load),
  };
  full.destroy();
  wait.destroy();
  return totals;
}

type Totals = ReturnType<typeof addUp>;

/** `<prefix>_<reason>` figures, one per reason. */
function reasonFigures(prefix: string, counts: Record<string, number>): Figures {
  const f: Figures = {};
  for (const [reason, n] of Object.entries(counts)) {
    f[`${prefix}_${reason.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`] = n;
  }
  return f;
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((n, v) => n + v, 0);

/** Times of the restart, from the SIGTERM (epoch ms `t0`). */
interface Timeline {
  t0: number;
  stopped: number;
  listening: number;
  ready: number;
  published: number;
}

function restartFigures(t: Totals, tl: Timeline, options: StormRestartOptions): Figures {
  const from = (x: number | null) => (x === null ? null : x - tl.t0);
  return {
    subscribers: t.subscribers,
    subscribers_open: t.opened,
    subscribers_open_failed: total(t.openFailed),
    subscribers_live: t.live,
    subscribers_dropped: t.dropped,
    subscribers_served: t.served,
    subscribers_not_served: t.subscribers - t.served,
    server_stopped_ms: tl.stopped - tl.t0,
    server_listening_ms: tl.listening - tl.t0,
    server_ready_ms: tl.ready - tl.t0,
    history_published_ms: tl.published - tl.t0,
    first_drop_ms: from(t.firstDropAt),
    last_drop_ms: from(t.lastDropAt),
    first_full_replay_ms: from(t.firstServedAt),
    // Only when every subscriber got there: otherwise the storm never ended.
    last_full_replay_ms: t.served === t.subscribers ? from(t.lastServedAt) : null,
    full_replay_p50_ms: t.fullReplayMs?.p50 ?? null,
    full_replay_p99_ms: t.fullReplayMs?.p99 ?? null,
    full_replay_max_ms: t.fullReplayMs?.max ?? null,
    reconnect_wait_p50_ms: t.reconnectWaitMs?.p50 ?? null,
    reconnect_wait_p99_ms: t.reconnectWaitMs?.p99 ?? null,
    reconnect_wait_max_ms: t.reconnectWaitMs?.max ?? null,
    reconnect_attempts: t.attempts,
    attempts_refused: total(t.refused),
    streams_retried: t.retried,
    subscribers_reset: total(t.reset),
    replayed_events: t.replayed,
    replayed_events_expected: t.live * options.history,
    harness_subscribers_shared: t.shared,
    lost: t.lost,
    duplicated: t.duplicated,
    out_of_order: t.outOfOrder,
    corrupted: t.corrupted,
  };
}

function restartWarnings(t: Totals, limited: string[], expectResets: boolean): string[] {
  const warnings: string[] = [];
  const notServed = t.subscribers - t.served;
  if (notServed > 0) {
    warnings.push(
      `${notServed} of ${t.subscribers} subscriber(s) NOT SERVED: did not open ${JSON.stringify(t.openFailed)}, live ${t.live}, dropped ${t.dropped}, attempts refused ${JSON.stringify(t.refused)}`,
    );
  }
  if (t.lost + t.duplicated + t.outOfOrder + t.corrupted > 0) {
    warnings.push(
      `EVENTS LOST: ${t.lost}, DUPLICATED: ${t.duplicated}, OUT OF ORDER: ${t.outOfOrder}, CORRUPTED: ${t.corrupted} (all must be 0)`,
    );
  }
  const resets = total(t.reset);
  if (resets > 0 && !expectResets) {
    warnings.push(
      `${resets} subscriber(s) RESET although the record should have survived the restart: ${JSON.stringify(t.reset)}`,
    );
  }
  for (const l of limited) warnings.push(`HARNESS-LIMITED: ${l}`);
  return warnings;
}

/** The live phase: subscribers open, the live event (seq 0) published and received by all. */
async function goLive(crew: RestartCrew, options: StormRestartOptions, channel: string) {
  const log = options.log ?? stderrLog;
  const { base } = options.server;
  const open = await crew.open(options.history, options.eventBytes);
  log(
    `restart storm: ${open.opened} of ${options.subscribers} live subscribers open on ${channel} over ${crew.size} worker process(es)`,
  );
  const [id0] = await publishHistory({
    base,
    channel,
    count: 1,
    eventBytes: options.eventBytes,
    token: options.token,
  });
  const live = await until(
    async () => (await crew.progress()).live >= open.opened,
    now() + LIVE_TIMEOUT_MS,
  );
  if (!live) log('restart storm: not every open subscriber got the live event');
  return { open, id0: id0! };
}

/** Stops and starts the server, then publishes seq 1..K as soon as it is ready. */
async function restart(options: StormRestartOptions, channel: string) {
  const log = options.log ?? stderrLog;
  const { server } = options;
  const t0 = now();
  log('restart storm: stopping the server');
  await server.stop();
  const stopped = now();
  await server.start();
  const listening = now();
  if (!(await ready(server.base, 30_000))) throw new Error(`${server.base}/readyz never said 200`);
  const isReady = now();
  log(
    `restart storm: server back after ${(listening - t0).toFixed(0)} ms; publishing ${options.history} events`,
  );
  const ids = await publishHistory({
    base: server.base,
    channel,
    count: options.history,
    eventBytes: options.eventBytes,
    token: options.token,
    from: 1,
  });
  const timeline: Timeline = { t0, stopped, listening, ready: isReady, published: now() };
  return { ids, timeline };
}

export async function runStormRestart(
  options: StormRestartOptions,
): Promise<Omit<Report, 'environment' | 'startedAt'>> {
  const log = options.log ?? stderrLog;
  const { base } = options.server;
  if (!base.startsWith('http://')) throw new Error(`the restart storm reads raw sockets: ${base}`);
  const channel = `${options.channel}-restart-${Date.now().toString(36)}`;
  const workers = options.workers ?? defaultWorkers(options.subscribers);
  checkWorkerShare(options.subscribers, workers);
  const crew = new RestartCrew(workerUrls([base], channel, options.subscribers, workers));
  try {
    const { open, id0 } = await goLive(crew, options, channel);
    const sampler = new MetricsSampler([base]);
    const queueBefore = readListenQueue([base]);
    const { ids, timeline } = await restart(options, channel);
    await crew.ids([id0, ...ids]);
    const deadline = timeline.t0 + options.timeoutS * 1000;
    await until(async () => (await crew.progress()).served >= open.opened, deadline);
    const totals = addUp(await crew.collect());
    const listenQueue = listenQueueFigures(queueBefore, readListenQueue([base]));
    // The restarted server's counters started at 0: they count this storm alone.
    const after = await scrapeMetrics(base);
    sampler.add([after]);
    const sampled = await sampler.stop();
    log(`restart storm: ${totals.served} of ${totals.subscribers} served`);
    const limited = stormHarnessLimits(totals.loads);
    const f: Figures = {
      ...restartFigures(totals, timeline, options),
      server_replayed_events: sample(after, 'sse_replayed_events_total'),
      server_events_sent: sample(after, 'sse_events_sent_total{route="/sse/channels/:channel"}'),
      server_streams_opened: sample(after, 'sse_connections_total{route="/sse/channels/:channel"}'),
      server_rss_peak_bytes: sampled.peakRssBytes,
      server_event_loop_lag_p99_max_ms: sampled.eventLoopLagP99MaxMs,
      server_event_loop_lag_max_ms: sampled.eventLoopLagMaxMs,
      server_metrics_samples: sampled.samples,
      ...listenQueue,
      ...reasonFigures('subscribers_reset', totals.reset),
      ...reasonFigures('attempts_refused', totals.refused),
      ...reasonFigures('subscribers_open_failed', totals.openFailed),
    };
    totals.loads.forEach((l, i) => {
      f[`harness_worker${i}_cpu_pct`] = l.cpuPct;
      f[`harness_worker${i}_event_loop_p99_ms`] = l.eventLoopP99Ms;
    });
    f.harness_worker_cpu_max_pct = Math.max(0, ...totals.loads.map((l) => l.cpuPct));
    f.harness_event_loop_p99_max_ms = Math.max(0, ...totals.loads.map((l) => l.eventLoopP99Ms));
    f.harness_limited = limited.length > 0 ? 1 : 0;
    return {
      scenario: 'storm-restart',
      target: options.label ?? base,
      parameters: {
        subscribers: options.subscribers,
        history: options.history,
        event_bytes: options.eventBytes,
        workers: crew.size,
        timeout_s: options.timeoutS,
        resets_expected: options.expectResets ? 'yes' : 'no',
        receiver: 'raw',
        channel,
      },
      figures: f,
      series: {
        latency: totals.fullReplayDistribution,
        latencyLabel: 'time to full replay (reconnect -> seq 1..K all in)',
        throughput: [],
        throughputLabel: '',
      },
      warnings: [
        ...restartWarnings(totals, limited, options.expectResets),
        ...listenQueueWarnings(listenQueue),
      ],
      harnessLimited: limited,
    };
  } finally {
    await crew.close();
  }
}
