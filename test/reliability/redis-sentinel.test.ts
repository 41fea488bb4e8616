// The Redis broker on Redis Sentinel (one master, one replica, three sentinels; real processes on
// random ports, test/helpers/redis-ha.ts):
// - kill -9 of the master under a steady publisher, subscribers on two server processes: the
//   servers follow the new master by themselves (no restart), publishing resumes (the time is
//   reported), every subscriber gets every acknowledged event the new master holds once, in order,
//   or a reset before a gap; acknowledged events the new master lacks are counted;
// - a failover that loses entries gives the live subscribers a reset before the next events; one
//   that loses none gives no reset and no duplicate;
// - broker.redis.waitReplicas 1: a replica that does not answer makes a publish 503 "unknown",
//   and the retry with its Idempotency-Key resolves it; ten forced failovers (kill -9 and SENTINEL
//   FAILOVER in turn) lose no acknowledged event.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redisCall } from '../../loadtest/src/redis-ha.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { byId, deliveryReport, describeDelivery } from '../helpers/delivery.ts';
import { keyedPublisher, percentile } from '../helpers/ha-publisher.ts';
import { metricValue } from '../helpers/metrics-text.ts';
import { spawnServer } from '../helpers/process.ts';
import { missingRedisHa, type SentinelSet, startSentinelSet } from '../helpers/redis-ha.ts';
import { publish, type SseEvent, Subscriber, startServer } from '../helpers/server.ts';

const skip = missingRedisHa();
let prefixes = 0;
const newPrefix = () => `ha${prefixes++}-${process.pid}:`;
/** History kept long enough for every check below to read the whole stream back. */
const KEEP = { SSE_HISTORY_SIZE: '100000', SSE_REDIS_TRIM_GRACE_MS: '600000' };

/** Ids of the stream as the current master holds it. */
async function idsInRedis(set: SentinelSet, key: string): Promise<Set<string>> {
  const entries = (await redisCall(await set.masterPort(), 'XRANGE', key, '-', '+')) as [
    string,
    string[],
  ][];
  return new Set(entries.map(([id]) => id));
}

/**
 * The delivery contract for one subscriber, for the acknowledged events Redis still holds: each
 * once, in order, or a reset before a gap. Events it got that no 202 named (a 503 "unknown" whose
 * events were stored, then published again by the retry) are allowed: the publisher's retry is
 * at-least-once across a lost answer, never the same id twice.
 */
function contractKept(acked: string[], events: readonly SseEvent[]) {
  const r = deliveryReport(acked, events);
  const ok =
    r.silentGaps === 0 && r.duplicates === 0 && r.outOfOrder === 0 && r.badResets.length === 0;
  return { ok, report: r, text: `${describeDelivery(r)} (unacknowledged extras ${r.unknown})` };
}

describe('Redis broker on Sentinel', { skip: skip ?? false }, () => {
  test('kill -9 of the master under a steady publisher: two server processes follow the new master by themselves; publishing resumes; every subscriber gets every acknowledged event Redis holds once, in order, or a reset first', async (t) => {
    const set = await startSentinelSet();
    const env = set.env({ SSE_REDIS_KEY_PREFIX: newPrefix(), ...KEEP });
    const servers = await Promise.all([spawnServer(env), spawnServer(env)]);
    const subs = servers.flatMap((s) =>
      [0, 1].map(() => new Subscriber(`${s.base}/sse/channels/steady`)),
    );
    const publisher = keyedPublisher(
      servers.map((s) => s.base),
      'steady',
      { intervalMs: 20, lanes: 2 },
    );
    try {
      await Promise.all(subs.map((s) => s.opened));
      await publisher.waitForAcks(100);
      const old = await set.masterPort();
      const killedAt = performance.now();
      await set.kill(old);
      const resumed = await publisher.resumedAfter(killedAt);
      const promoted = await set.waitForNewMaster(old);
      const ackedBefore = publisher.acks.length;
      await publisher.waitForAcks(ackedBefore + 100);
      await publisher.stop();
      const acked = publisher.acks.map((a) => a.id);
      const held = await idsInRedis(set, `${env.SSE_REDIS_KEY_PREFIX}steady`);
      const lost = acked.filter((id) => !held.has(id));
      const newest = [...acked].sort(byId).at(-1);
      await eventually(
        () => subs.every((s) => s.events.some((e) => e.id === newest)),
        20_000,
        'every subscriber to reach the newest acknowledged event',
      );
      t.diagnostic(
        `master ${old} killed, ${promoted} promoted; first publish acknowledged ${resumed.toFixed(0)} ms after the kill; ` +
          `${acked.length} acknowledged, ${lost.length} of them not on the new master; refusals ${JSON.stringify(Object.fromEntries(publisher.refusals))}`,
      );
      assert.ok(resumed < 30_000, `publishing resumed after ${resumed} ms (target under 10 s)`);
      for (const [i, s] of subs.entries()) {
        const check = contractKept(
          acked.filter((id) => held.has(id)),
          s.events,
        );
        t.diagnostic(`subscriber ${i} (server ${i >> 1}): ${check.text}`);
        assert.ok(check.ok, `subscriber ${i}: ${check.text}`);
        assert.ok(!s.ended && !s.aborted, `subscriber ${i}'s stream stayed open`);
      }
      for (const s of servers) {
        assert.equal(s.child.exitCode, null, 'no server process restarted');
        assert.equal(await metricValue(s.base, 'sse_broker_failovers_total'), 1);
        assert.equal(await metricValue(s.base, 'sse_broker_up'), 1);
        const switched = s.logs.filter((l) => l.event === 'redis_topology' && l.failovers === 1);
        assert.equal(switched.length, 1, 'the switch is logged once');
      }
    } finally {
      await publisher.stop();
      for (const s of subs) s.close();
      await Promise.all(servers.map((s) => s.stop()));
      await set.stop();
    }
  });

  test('a failover that loses entries gives live subscribers a reset before the next events; one that loses none gives no reset and no duplicate', async (t) => {
    const set = await startSentinelSet();
    const server = await startServer({
      broker: {
        type: 'redis',
        keyPrefix: newPrefix(),
        redis: { sentinels: set.sentinels, sentinelName: set.name },
      },
    });
    const sub = new Subscriber(`${server.base}/sse/channels/fork`);
    const publishSoon = async (data: string) => {
      for (let attempt = 0; attempt < 300; attempt++) {
        const r = await publish(server.base, 'fork', { data });
        if (r.status === 202) return r.body.ids![0]!;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`publish of ${data} never acknowledged`);
    };
    try {
      await sub.opened;
      // Lossless: everything replicated, then the master dies.
      for (const d of ['a1', 'a2', 'a3']) await publishSoon(d);
      const [first, second] = set.dataPorts;
      await set.waitInSync(second!);
      await set.kill(first!);
      await set.waitForNewMaster(first!);
      for (const d of ['b1', 'b2', 'b3']) await publishSoon(d);
      await sub.waitFor(6);
      assert.deepEqual(
        sub.events.map((e) => [e.event, e.data]),
        ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'].map((d) => [undefined, d]),
        'a lossless failover: every event once, no reset',
      );

      // Lossy: the replica stops hearing from the master (frozen, its link cut), the master
      // takes three more events and dies; the replica it never told is promoted.
      await set.rejoin(first!);
      set.pause(first!);
      await redisCall(second!, 'CLIENT', 'KILL', 'TYPE', 'replica');
      const lostIds = [];
      for (const d of ['c1', 'c2', 'c3']) lostIds.push(await publishSoon(d));
      await sub.waitFor(9);
      await set.kill(second!);
      set.resume(first!);
      await set.waitForNewMaster(second!);
      for (const d of ['d1', 'd2']) await publishSoon(d);
      await sub.waitFor(12);
      const tail = sub.events.slice(6);
      t.diagnostic(
        `after the lossy failover: ${tail.map((e) => e.event ?? e.data).join(' ')}; reset ${tail[3]?.data}`,
      );
      assert.deepEqual(
        tail.map((e) => e.event ?? e.data),
        ['c1', 'c2', 'c3', 'reset', 'd1', 'd2'],
      );
      const reset = JSON.parse(tail[3]!.data) as { lastEventId: string; resumeAfter: string };
      assert.equal(reset.lastEventId, lostIds[2], 'the reset names the last id this replica had');
      const ids = sub.events.filter((e) => e.event !== 'reset').map((e) => e.id);
      assert.equal(new Set(ids).size, ids.length, 'no id twice');
      assert.equal(await metricValue(server.base, 'sse_broker_failovers_total'), 2);
    } finally {
      sub.close();
      await server.close();
      await set.stop();
    }
  });

  test('waitReplicas 1 with the replica not answering: 503 "outcome":"unknown" after waitTimeoutMs; the retry with the same Idempotency-Key, once the replica is back, answers the first ids and stores nothing twice', async (t) => {
    const set = await startSentinelSet();
    const prefix = newPrefix();
    const server = await startServer({
      broker: {
        type: 'redis',
        keyPrefix: prefix,
        redis: {
          sentinels: set.sentinels,
          sentinelName: set.name,
          waitReplicas: 1,
          waitTimeoutMs: 300,
        },
      },
    });
    const headers = { 'Idempotency-Key': 'once-only' };
    try {
      const ok = await publish(server.base, 'waited', { data: 'replicated' });
      assert.equal(ok.status, 202, JSON.stringify(ok.body));
      const replica = set.dataPorts[1]!;
      set.pause(replica);
      const t0 = performance.now();
      const first = await publish(server.base, 'waited', { data: 'pending' }, headers);
      const took = performance.now() - t0;
      assert.equal(first.status, 503, JSON.stringify(first.body));
      assert.equal(first.body.error, 'broker_unavailable');
      assert.equal(first.body.outcome, 'unknown');
      assert.ok(first.headers.get('retry-after'));
      const again = await publish(server.base, 'waited', { data: 'pending' }, headers);
      assert.equal(again.status, 503, 'still not on a replica');
      set.resume(replica);
      await set.waitInSync(replica);
      const retry = await publish(server.base, 'waited', { data: 'pending' }, headers);
      t.diagnostic(
        `503 after ${took.toFixed(0)} ms (waitTimeoutMs 300); the retry: ${retry.status} ${JSON.stringify(retry.body)}`,
      );
      assert.equal(retry.status, 202, JSON.stringify(retry.body));
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      const entries = (await redisCall(
        await set.masterPort(),
        'XRANGE',
        `${prefix}waited`,
        '-',
        '+',
      )) as [string, string[]][];
      assert.deepEqual(
        entries.map(([id, f]) => [id, f[f.indexOf('d') + 1]]),
        [
          [ok.body.ids![0], 'replicated'],
          [retry.body.ids![0], 'pending'],
        ],
      );
    } finally {
      set.resume(set.dataPorts[1]!);
      await server.close();
      await set.stop();
    }
  });

  test('waitReplicas 1: ten forced failovers (kill -9 and SENTINEL FAILOVER in turn) lose no acknowledged event', async (t) => {
    const set = await startSentinelSet();
    const prefix = newPrefix();
    const env = set.env({
      SSE_REDIS_KEY_PREFIX: prefix,
      SSE_REDIS_WAIT_REPLICAS: '1',
      SSE_REDIS_WAIT_TIMEOUT_MS: '500',
      ...KEEP,
    });
    const servers = await Promise.all([spawnServer(env), spawnServer(env)]);
    const subs = servers.map((s) => new Subscriber(`${s.base}/sse/channels/tenfold`));
    const publisher = keyedPublisher(
      servers.map((s) => s.base),
      'tenfold',
      { intervalMs: 10, lanes: 3 },
    );
    const rounds: string[] = [];
    try {
      await Promise.all(subs.map((s) => s.opened));
      await publisher.waitForAcks(50);
      // SENTINEL FAILOVER first (quick: the replica is always one the sentinels know to be
      // healthy), then kill -9 (the killed node rejoins as a replica: WAIT 1 needs one).
      for (let round = 1; round <= 10; round++) {
        const kill = round > 7;
        const old = await set.masterPort();
        const replica = set.dataPorts.find((p) => p !== old)!;
        await set.waitInSync(replica);
        const before = publisher.acks.length;
        const at = performance.now();
        if (kill) await set.kill(old);
        else await set.failover();
        const promoted = await set.waitForNewMaster(old);
        const switchedAt = performance.now();
        if (kill) await set.rejoin(old);
        await publisher.waitForAcks(before + 20);
        // Both servers moved to the new master (and counted it) before the next round.
        for (const s of servers) {
          await eventually(
            async () => (await metricValue(s.base, 'sse_broker_failovers_total')) === round,
            15_000,
            `round ${round} seen by ${s.base}`,
            100,
          );
        }
        // The longest pause between two acknowledgements around the failover.
        const answered = publisher.acks
          .slice(Math.max(0, before - 1))
          .map((a) => a.answeredAt)
          .sort((a, b) => a - b);
        let pause = 0;
        for (let i = 1; i < answered.length; i++) {
          pause = Math.max(pause, answered[i]! - answered[i - 1]!);
        }
        rounds.push(
          `${kill ? 'kill -9' : 'SENTINEL FAILOVER'} -> ${promoted} in ${(switchedAt - at).toFixed(0)} ms, publishing paused ${pause.toFixed(0)} ms`,
        );
      }
      await publisher.stop();
      const acked = publisher.acks.map((a) => a.id);
      const held = await idsInRedis(set, `${prefix}tenfold`);
      const lost = acked.filter((id) => !held.has(id));
      const latencies = publisher.acks.map((a) => a.answeredAt - a.sentAt);
      t.diagnostic(
        `rounds (master promoted after; longest pause between acknowledgements): ${rounds.join('; ')}`,
      );
      t.diagnostic(
        `${acked.length} acknowledged, ${lost.length} lost; publish p50 ${percentile(latencies, 50).toFixed(1)} ms; refusals ${JSON.stringify(Object.fromEntries(publisher.refusals))}`,
      );
      assert.equal(lost.length, 0, `acknowledged events the master no longer holds: ${lost}`);
      const newest = [...acked].sort(byId).at(-1);
      await eventually(
        () => subs.every((s) => s.events.some((e) => e.id === newest)),
        20_000,
        'every subscriber to reach the newest acknowledged event',
      );
      for (const [i, s] of subs.entries()) {
        const check = contractKept(acked, s.events);
        t.diagnostic(`subscriber on server ${i}: ${check.text}`);
        assert.ok(check.ok, `subscriber ${i}: ${check.text}`);
      }
    } finally {
      await publisher.stop();
      for (const s of subs) s.close();
      await Promise.all(servers.map((s) => s.stop()));
      await set.stop();
    }
  });
});
