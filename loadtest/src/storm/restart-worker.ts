// A restart-storm worker (a child process of scenarios/storm-restart.ts): opens its share of the
// live subscribers (storm/resuming-subscriber.ts), reports how far they have got, takes the ids of
// the events once published, and at the end sums its subscribers into RestartStats.
import * as hdr from 'hdr-histogram-js';
import { newLatencyHistogram } from '../fanout/histogram.ts';
import { LoadMonitor } from '../fanout/load-monitor.ts';
import { rawTarget } from '../raw/request.ts';
import type {
  RestartProgress,
  RestartReply,
  RestartRequest,
  RestartStats,
} from './restart-protocol.ts';
import { ResumeBook, ResumingSubscriber } from './resuming-subscriber.ts';

const monitor = new LoadMonitor();
let book = new ResumeBook(0, 0);
let subscribers: ResumingSubscriber[] = [];
const openFailed: Record<string, number> = {};

/** Subscribers opened per batch; the worker yields to its event loop between batches. */
const OPEN_BATCH = 250;
/** A subscriber not open this long after the worker started opening counts as failed. */
const OPEN_TIMEOUT_MS = 30_000;

async function open(req: Extract<RestartRequest, { type: 'open' }>): Promise<RestartReply> {
  book = new ResumeBook(req.history, req.eventBytes);
  const opening: Promise<boolean>[] = [];
  for (let i = 0; i < req.urls.length; i += OPEN_BATCH) {
    for (let j = i; j < Math.min(req.urls.length, i + OPEN_BATCH); j++) {
      const url = new URL(req.urls[j]!);
      opening.push(
        new Promise((resolve) => {
          const sub = new ResumingSubscriber(book, rawTarget(url), url, (ok, reason) => {
            if (!ok) openFailed[reason] = (openFailed[reason] ?? 0) + 1;
            resolve(ok);
          });
          subscribers.push(sub);
          sub.start();
        }),
      );
    }
    await new Promise((r) => setImmediate(r));
  }
  const timer = setTimeout(() => {
    for (const sub of subscribers) sub.openTimeout();
  }, OPEN_TIMEOUT_MS);
  const results = await Promise.all(opening);
  clearTimeout(timer);
  const opened = results.filter(Boolean).length;
  monitor.reset();
  return { type: 'opened', opened, failed: { ...openFailed } };
}

function progress(): RestartProgress {
  let live = 0;
  let dropped = 0;
  let served = 0;
  let settled = 0;
  for (const sub of subscribers) {
    if (sub.live) live++;
    if (sub.droppedAt !== null) dropped++;
    if (sub.served) served++;
    if (sub.served || !sub.opened) settled++;
  }
  return { live, dropped, served, settled };
}

const minOf = (a: number | null, b: number | null) => (b === null ? a : Math.min(a ?? b, b));
const maxOf = (a: number | null, b: number | null) => (b === null ? a : Math.max(a ?? b, b));
const micros = (ms: number) => Math.max(1, Math.round(ms * 1000));

function collect(): RestartStats {
  for (const sub of subscribers) sub.stop();
  const full = newLatencyHistogram();
  const wait = newLatencyHistogram();
  const stats: RestartStats = {
    ...progress(),
    subscribers: subscribers.length,
    opened: subscribers.filter((s) => s.opened).length,
    openFailed: { ...openFailed },
    attempts: 0,
    refused: { ...book.refused },
    retried: 0,
    reset: { ...book.reset },
    replayed: 0,
    shared: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    corrupted: 0,
    fullReplay: '',
    reconnectWait: '',
    firstDropAt: null,
    lastDropAt: null,
    firstServedAt: null,
    lastServedAt: null,
    load: monitor.read(),
  };
  for (const sub of subscribers) {
    stats.attempts += sub.attempts;
    if (sub.attempts > 1) stats.retried++;
    stats.replayed += sub.distinct;
    if (sub.sharedEvents > 0) stats.shared++;
    stats.lost += sub.lost;
    stats.duplicated += sub.duplicated;
    stats.outOfOrder += sub.outOfOrder;
    stats.corrupted += sub.corrupted;
    stats.firstDropAt = minOf(stats.firstDropAt, sub.droppedAt);
    stats.lastDropAt = maxOf(stats.lastDropAt, sub.droppedAt);
    stats.firstServedAt = minOf(stats.firstServedAt, sub.servedAt);
    stats.lastServedAt = maxOf(stats.lastServedAt, sub.servedAt);
    if (sub.servedAt !== null && sub.servedFrom !== null) {
      full.recordValue(micros(sub.servedAt - sub.servedFrom));
      if (sub.droppedAt !== null) wait.recordValue(micros(sub.servedFrom - sub.droppedAt));
    }
  }
  stats.fullReplay = hdr.encodeIntoCompressedBase64(full);
  stats.reconnectWait = hdr.encodeIntoCompressedBase64(wait);
  full.destroy();
  wait.destroy();
  return stats;
}

async function handle(req: RestartRequest): Promise<RestartReply> {
  switch (req.type) {
    case 'open':
      return open(req);
    case 'progress':
      return { type: 'progress', progress: progress() };
    case 'ids':
      book.ids = req.ids;
      for (const sub of subscribers) sub.idsKnown();
      return { type: 'ok' };
    case 'collect':
      return { type: 'stats', stats: collect() };
    case 'close':
      for (const sub of subscribers) sub.stop();
      monitor.stop();
      subscribers = [];
      return { type: 'closed' };
  }
}

process.on('message', (req: RestartRequest) => {
  handle(req).then(
    (reply) => {
      process.send?.(reply);
      if (reply.type === 'closed') process.disconnect();
    },
    (err: unknown) => {
      process.stderr.write(`loadtest restart worker: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
});
// The coordinator going away ends the worker too.
process.on('disconnect', () => process.exit(0));
