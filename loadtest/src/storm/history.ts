// The storm's history: `count` events (seq from..from+count-1, data from replay-check.ts
// historyData) published to a channel in order, in batches of at most MAX_BATCH_EVENTS events and
// BATCH_BODY_BYTES of body, one batch after the other; returns the ids the server gave them.
import { historyData } from './replay-check.ts';

/** The server's channels.maxBatchEvents default. */
export const MAX_BATCH_EVENTS = 1000;
/** Under the server's channels.maxBodyBytes default (65536) with room to spare. */
export const BATCH_BODY_BYTES = 60_000;

export interface HistoryOptions {
  base: string;
  channel: string;
  count: number;
  eventBytes: number;
  token: string;
  /** The first seq (default 0). */
  from?: number;
}

/** A publish body (a JSON array of `{"data": ...}`) and how many events it holds. */
export interface Batch {
  body: string;
  size: number;
}

/** The batches, in seq order from `from`, each within both bounds (one event at least). */
export function historyBatches(count: number, eventBytes: number, from = 0): Batch[] {
  const batches: Batch[] = [];
  const close = (items: string[]) =>
    batches.push({ body: `[${items.join(',')}]`, size: items.length });
  let items: string[] = [];
  let bytes = 2;
  for (let seq = from; seq < from + count; seq++) {
    const item = JSON.stringify({ data: historyData(seq, eventBytes) });
    const full = items.length >= MAX_BATCH_EVENTS || bytes + item.length + 1 > BATCH_BODY_BYTES;
    if (items.length > 0 && full) {
      close(items);
      items = [];
      bytes = 2;
    }
    items.push(item);
    bytes += item.length + 1;
  }
  if (items.length > 0) close(items);
  return batches;
}

/** Publishes one batch; its ids, or an error naming the answer. */
async function publishBatch(options: HistoryOptions, { body, size }: Batch): Promise<string[]> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const res = await fetch(
    `${options.base}/channels/${encodeURIComponent(options.channel)}/events`,
    { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) },
  );
  const text = await res.text();
  const ids = res.status === 202 ? (JSON.parse(text) as { ids?: unknown }).ids : undefined;
  if (!Array.isArray(ids) || ids.length !== size) {
    throw new Error(`publishing the history: HTTP ${res.status} ${text.slice(0, 200)}`);
  }
  return ids as string[];
}

export async function publishHistory(options: HistoryOptions): Promise<string[]> {
  const ids: string[] = [];
  for (const batch of historyBatches(options.count, options.eventBytes, options.from)) {
    ids.push(...(await publishBatch(options, batch)));
  }
  return ids;
}
