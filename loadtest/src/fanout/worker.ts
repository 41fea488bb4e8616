// A subscriber worker with the client-library receiver (`--receiver client`, the default): a child
// process of the fan-out coordinator that opens its share of the subscribers with the project's
// client library (connectEventStream on one undici Agent, no reconnection) and hands every event
// to the ledger (ledger.ts: seqs, order, shape, delivery latency). On several-channel streams
// (/sse/streams) the library unwraps the envelope itself: `channel` names the event's channel and
// `data` is that channel's own data, read as on one channel.
import { Agent } from 'undici';
import {
  connectEventStream,
  type EventStreamHandle,
  type SseEvent,
} from '../../../services/client/src/index.ts';
import { intactData, publishTime, sequenceNumber } from './event-data.ts';
import { DeliveryLedger, type LedgerSubscriber, serveWorker } from './ledger.ts';
import type { WorkerReply } from './protocol.ts';

const ledger = new DeliveryLedger();
const handles: EventStreamHandle[] = [];
const agent = new Agent({ connections: null, pipelining: 1, connectTimeout: 30_000 });

function onEvent(sub: LedgerSubscriber, ev: SseEvent): void {
  const { event, id, data } = ev;
  if (event !== 'message') {
    ledger.error(`event_${event}`);
    return;
  }
  const now = performance.timeOrigin + performance.now();
  const shape = ledger.shape;
  const intact = shape === null || intactData(data, shape);
  const seq = sequenceNumber(data);
  const ts = publishTime(data);
  const streams = ledger.streams;
  if (streams === null) {
    ledger.deliver(sub, seq, ts, intact, id || undefined, now);
    return;
  }
  const channel = typeof ev.channel === 'string' ? (streams.byName.get(ev.channel) ?? -1) : -1;
  ledger.deliverOnChannel(sub, channel, seq, ts, intact, id || undefined, now);
}

function openOne(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const sub = ledger.add();
    const handle = connectEventStream(url, {
      dispatcher: agent,
      onOpen: () => {
        sub.opened = true;
        if (settled) return;
        settled = true;
        resolve(true);
      },
      onError: (err) => {
        ledger.error(err.reason);
        if (!settled) {
          settled = true;
          resolve(false);
        }
      },
      onEvent: (ev) => onEvent(sub, ev),
    });
    handles.push(handle);
  });
}

/** Subscribers opened per batch; the worker yields to its event loop between batches. */
const OPEN_BATCH = 250;

async function open(urls: string[]): Promise<WorkerReply> {
  const opening: Promise<boolean>[] = [];
  for (let i = 0; i < urls.length; i += OPEN_BATCH) {
    for (let j = i; j < Math.min(urls.length, i + OPEN_BATCH); j++) opening.push(openOne(urls[j]!));
    await new Promise((r) => setImmediate(r));
  }
  const results = await Promise.all(opening);
  const opened = results.filter(Boolean).length;
  return { type: 'opened', opened, failed: results.length - opened, errors: { ...ledger.errors } };
}

async function close(): Promise<void> {
  for (const handle of handles) handle.close();
  await Promise.all(handles.map((h) => h.done.catch(() => undefined)));
  await agent.close();
}

serveWorker(ledger, { open, close }, 'worker');
