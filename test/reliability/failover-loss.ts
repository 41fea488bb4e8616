// Acknowledged events lost across a forced failover, with broker.redis.waitReplicas 0 and 1, and
// what WAIT costs a publish (docs/RELIABILITY.md). Not a test (no assertion): a measurement,
// run by hand:
//   node test/reliability/failover-loss.ts [--runs 3] [--lanes 8]
// Each run, for waitReplicas 0 and 1 in turn (interleaved, same machine, same minutes), on a fresh
// Sentinel set (one master, one replica, three sentinels; test/helpers/redis-ha.ts):
//   1. cost: the broker alone (in this process, no HTTP), 2000 publishes of one event one after
//      another, then the same through a server process's HTTP API (500): p50 and p99;
//   2. kill -9: a server process, `lanes` publishers without pause (each event its own
//      Idempotency-Key, a 503 retried with it), kill -9 of the master after 500 acknowledgements;
//      once the replica is promoted the killed node rejoins as its replica (with waitReplicas 1
//      nothing is acknowledged without one), 200 more acknowledgements; every acknowledged id is
//      then looked up on the new master: the ones it lacks were lost;
//   3. a lagging replica: the same, but the replica stops hearing from the master (SIGSTOP and its
//      link cut) one second before the kill: what a failover loses when replication is behind.
// Prints one line per run and part, and a Markdown table.
import { parseArgs } from 'node:util';
import { redisCall } from '../../loadtest/src/redis-ha.ts';
import { RedisBroker } from '../../services/server/src/broker/redis-broker.ts';
import { parseHostPort } from '../../services/server/src/broker/redis-connection.ts';
import { keyedPublisher, percentile } from '../helpers/ha-publisher.ts';
import { spawnServer } from '../helpers/process.ts';
import { type SentinelSet, startSentinelSet } from '../helpers/redis-ha.ts';
import { publish } from '../helpers/server.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, lanes: { type: 'string', default: '8' } },
});
const runs = Number(values.runs);
const lanes = Number(values.lanes);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Loss {
  acked: number;
  lost: number;
  promotedMs: number;
  resumedMs: number;
  refusals: string;
}

interface Result {
  wait: number;
  run: number;
  broker: [number, number];
  http: [number, number];
  kill: Loss;
  lagging: Loss;
}

const p50p99 = (xs: number[]): [number, number] => [percentile(xs, 50), percentile(xs, 99)];

/** Publish latency of the broker itself: RedisBroker.publish, one at a time. */
async function brokerCost(set: SentinelSet, wait: number): Promise<[number, number]> {
  const broker = new RedisBroker({
    target: {
      kind: 'sentinel',
      sentinels: set.sentinels.map(parseHostPort),
      name: set.name,
      sentinelPassword: '',
      password: '',
    },
    keyPrefix: `cost${wait}:`,
    historySize: 1000,
    historyTtlMs: 300_000,
    trimGraceMs: 60_000,
    maxStreamLength: 100_000,
    maxChannels: 10_000,
    idempotency: { ttlMs: 600_000, leaseMs: 7000 },
    waitReplicas: wait,
    waitTimeoutMs: 500,
  });
  await broker.start();
  try {
    for (let i = 0; i < 100 && !broker.up; i++) await sleep(50);
    const times: number[] = [];
    for (let i = 0; i < 2200; i++) {
      const t0 = performance.now();
      await broker.publish('cost', [{ data: String(i) }]);
      if (i >= 200) times.push(performance.now() - t0); // the first 200 warm up
    }
    return p50p99(times);
  } finally {
    await broker.close();
  }
}

/** A publisher at full speed, a kill -9 of the master (after `before`), the loss counted. */
async function loss(
  set: SentinelSet,
  base: string,
  channel: string,
  key: string,
  before?: () => Promise<void>,
): Promise<Loss> {
  const publisher = keyedPublisher([base], channel, { intervalMs: 0, lanes, tag: channel });
  await publisher.waitForAcks(500);
  const old = await set.masterPort();
  const replica = set.dataPorts.find((p) => p !== old)!;
  await before?.();
  const killedAt = performance.now();
  await set.kill(old);
  set.resume(replica);
  await set.waitForNewMaster(old);
  const promotedMs = performance.now() - killedAt;
  await set.rejoin(old);
  const resumedMs = await publisher.resumedAfter(killedAt);
  await publisher.waitForAcks(publisher.acks.length + 200);
  await publisher.stop();
  const entries = (await redisCall(await set.masterPort(), 'XRANGE', key, '-', '+')) as [
    string,
    string[],
  ][];
  const held = new Set(entries.map(([id]) => id));
  return {
    acked: publisher.acks.length,
    lost: publisher.acks.filter((a) => !held.has(a.id)).length,
    promotedMs,
    resumedMs,
    refusals: JSON.stringify(Object.fromEntries(publisher.refusals)),
  };
}

async function once(wait: number, run: number): Promise<Result> {
  const set = await startSentinelSet();
  const prefix = `loss${run}w${wait}:`;
  let server: Awaited<ReturnType<typeof spawnServer>> | null = null;
  try {
    const broker = await brokerCost(set, wait);
    server = await spawnServer(
      set.env({
        SSE_REDIS_KEY_PREFIX: prefix,
        SSE_REDIS_WAIT_REPLICAS: String(wait),
        SSE_HISTORY_SIZE: '100000',
        SSE_REDIS_TRIM_GRACE_MS: '600000',
      }),
    );
    const base = server.base;
    const times: number[] = [];
    for (let i = 0; i < 600; i++) {
      const t0 = performance.now();
      const r = await publish(base, 'latency', { data: String(i) });
      if (r.status === 202 && i >= 100) times.push(performance.now() - t0);
    }
    const kill = await loss(set, base, 'kill', `${prefix}kill`);
    const lagging = await loss(set, base, 'lag', `${prefix}lag`, async () => {
      const master = await set.masterPort();
      const replica = set.dataPorts.find((p) => p !== master)!;
      await set.waitInSync(replica);
      set.pause(replica);
      await redisCall(master, 'CLIENT', 'KILL', 'TYPE', 'replica');
      await sleep(1000);
    });
    return { wait, run, broker, http: p50p99(times), kill, lagging };
  } finally {
    await server?.stop();
    await set.stop();
  }
}

const ms = (x: number) => x.toFixed(2);
const results: Result[] = [];
for (let run = 1; run <= runs; run++) {
  for (const wait of [0, 1]) {
    const r = await once(wait, run);
    results.push(r);
    console.log(
      `run ${run} waitReplicas ${wait}: broker publish p50 ${ms(r.broker[0])} ms p99 ${ms(r.broker[1])} ms; HTTP publish p50 ${ms(r.http[0])} ms p99 ${ms(r.http[1])} ms`,
    );
    for (const [what, l] of [
      ['kill -9', r.kill],
      ['lagging replica + kill -9', r.lagging],
    ] as const) {
      console.log(
        `  ${what}: ${l.acked} acknowledged, ${l.lost} lost; replica promoted ${l.promotedMs.toFixed(0)} ms and first acknowledgement ${l.resumedMs.toFixed(0)} ms after the kill; refusals ${l.refusals}`,
      );
    }
  }
}
console.log(
  '\n| waitReplicas | run | broker publish p50 / p99 (ms) | HTTP publish p50 / p99 (ms) | kill -9: acknowledged, lost | lagging replica: acknowledged, lost | promoted / first 202 after the kill (ms) |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.wait} | ${r.run} | ${ms(r.broker[0])} / ${ms(r.broker[1])} | ${ms(r.http[0])} / ${ms(r.http[1])} | ${r.kill.acked}, ${r.kill.lost} | ${r.lagging.acked}, ${r.lagging.lost} | ${r.kill.promotedMs.toFixed(0)} / ${r.kill.resumedMs.toFixed(0)} |`,
  );
}
