// A storm worker (a child process of the storm coordinator): builds its subscribers' requests and
// the expected replay (and a reference per target, reference-replay.ts), connects them all at the
// coordinator's `startAt` in one synchronous loop
// (about 0.1 ms a socket: the first ones' responses wait for the loop's end, so its length is
// reported), waits until each has an outcome (or the deadline), and answers with its StormStats.
import { LoadMonitor } from '../fanout/load-monitor.ts';
import { eventStreamRequest, rawTarget } from '../raw/request.ts';
import type { StormReply, StormRequest } from './protocol.ts';
import { RawSubscriber, type StormTarget } from './raw-subscriber.ts';
import { ReferenceReplay } from './reference-replay.ts';
import { type ReplayExpectation, replayExpectation } from './replay-check.ts';
import { tally } from './tally.ts';

const monitor = new LoadMonitor();
let expect: ReplayExpectation = { ids: [], data: [] };
/** The target of each subscriber of this worker. */
let targets: StormTarget[] = [];
let subscribers: RawSubscriber[] = [];

const now = () => performance.timeOrigin + performance.now();

/** One target per distinct URL: host, port and the request with the Last-Event-ID. */
function buildTargets(urls: string[], lastEventId: string): StormTarget[] {
  const byUrl = new Map<string, StormTarget>();
  return urls.map((raw) => {
    let target = byUrl.get(raw);
    if (target === undefined) {
      const url = new URL(raw);
      target = { ...rawTarget(url), request: eventStreamRequest(url, lastEventId) };
      byUrl.set(raw, target);
    }
    return target;
  });
}

function prepare(req: Extract<StormRequest, { type: 'prepare' }>): StormReply {
  expect = replayExpectation(req.ids, req.eventBytes);
  targets = buildTargets(req.urls, req.ids[0]!);
  return { type: 'ready' };
}

async function go(req: Extract<StormRequest, { type: 'go' }>): Promise<StormReply> {
  let pending = targets.length;
  let allDone = () => {};
  const done = new Promise<void>((resolve) => {
    allDone = resolve;
    if (pending === 0) resolve();
  });
  const onDone = () => {
    if (--pending === 0) allDone();
  };
  // One reference per target: its subscribers send the same request and expect the same body.
  const references = new Map<StormTarget, ReferenceReplay>();
  subscribers = targets.map((target) => {
    let reference = references.get(target);
    if (reference === undefined) {
      reference = new ReferenceReplay(expect);
      references.set(target, reference);
    }
    return new RawSubscriber(expect, onDone, reference);
  });
  const wait = req.startAt - now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const loopStart = now();
  for (let i = 0; i < subscribers.length; i++) subscribers[i]!.start(targets[i]!);
  const connectLoopMs = now() - loopStart;
  // The load is measured from here: while the subscribers read (the loop's cost is its own figure).
  monitor.reset();
  const timer = setTimeout(
    () => {
      for (const sub of subscribers) sub.stop();
    },
    Math.max(0, req.deadline - now()),
  );
  await done;
  clearTimeout(timer);
  return {
    type: 'stats',
    stats: { ...tally(subscribers, req.startAt, monitor.read()), connectLoopMs },
  };
}

async function handle(req: StormRequest): Promise<StormReply> {
  switch (req.type) {
    case 'prepare':
      return prepare(req);
    case 'go':
      return go(req);
    case 'close':
      for (const sub of subscribers) sub.stop();
      monitor.stop();
      return { type: 'closed' };
  }
}

process.on('message', (req: StormRequest) => {
  handle(req).then(
    (reply) => {
      process.send?.(reply);
      if (reply.type === 'closed') process.disconnect();
    },
    (err: unknown) => {
      process.stderr.write(`loadtest storm worker: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
});
// The coordinator going away ends the worker too.
process.on('disconnect', () => process.exit(0));
