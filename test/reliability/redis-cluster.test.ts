// The Redis broker on Redis Cluster (real redis-server processes made into a cluster by
// `redis-cli --cluster create`, test/helpers/redis-ha.ts):
// - 100 channels over every master, subscribers on two servers: live delivery, replay and a
//   resume on the other server exact; idempotency keys and the channel bound across nodes; the
//   channel API across nodes; a key of the wrong type fails its channel alone;
// - resharding under publishing: a live channel's slot moves to another master (ASK while it is
//   split, MOVED after): no publish refused, every event once, in order, the reader follows;
// - kill -9 of one master (each master has a replica): its channels fail over and resume, the
//   other masters' channels never pause (not one publish refused), nothing acknowledged lost.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { redisCall } from '../../loadtest/src/redis-ha.ts';
import { keySlot } from '../../services/server/src/broker/redis-keys.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { byId, deliveryReport, describeDelivery } from '../helpers/delivery.ts';
import { keyedPublisher, percentile } from '../helpers/ha-publisher.ts';
import { metricValue } from '../helpers/metrics-text.ts';
import { missingRedisHa, type RedisCluster, startRedisCluster } from '../helpers/redis-ha.ts';
import { publish, Subscriber, startServer, type TestServer } from '../helpers/server.ts';

const skip = missingRedisHa();
let prefixes = 0;
const newPrefix = () => `cl${prefixes++}-${process.pid}:`;

function clusterServer(
  cluster: RedisCluster,
  prefix: string,
  extra: Record<string, unknown> = {},
): Promise<TestServer> {
  return startServer({
    broker: { type: 'redis', keyPrefix: prefix, redis: { cluster: cluster.seeds } },
    ...extra,
  });
}

/** Channels grouped by the master serving their stream's slot. */
async function byMaster(cluster: RedisCluster, prefix: string, channels: string[]) {
  const groups = new Map<number, string[]>();
  for (const ch of channels) {
    const owner = await cluster.ownerOf(keySlot(`${prefix}{${ch}}`));
    groups.set(owner, [...(groups.get(owner) ?? []), ch]);
  }
  return groups;
}

async function publishOk(base: string, channel: string, body: unknown, headers = {}) {
  const r = await publish(base, channel, body, headers);
  assert.equal(r.status, 202, `${channel}: ${r.status} ${JSON.stringify(r.body)}`);
  return r;
}

describe('Redis broker on Redis Cluster', { skip: skip ?? false }, () => {
  describe('three masters', () => {
    let cluster: RedisCluster;
    before(async () => {
      cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    });
    after(() => cluster?.stop());

    test('100 channels over every master: live delivery on two servers, replay and a resume on the other server exact; idempotency keys and the channel bound across nodes', async (t) => {
      const prefix = newPrefix();
      const a = await clusterServer(cluster, prefix);
      const b = await clusterServer(cluster, prefix);
      const channels = Array.from({ length: 100 }, (_, i) => `c${i}`);
      const subs = channels.flatMap((ch) => [
        new Subscriber(`${a.base}/sse/channels/${ch}`),
        new Subscriber(`${b.base}/sse/channels/${ch}`),
      ]);
      try {
        const groups = await byMaster(cluster, prefix, channels);
        t.diagnostic(
          `channels per master: ${[...groups].map(([m, chs]) => `${m}: ${chs.length}`).join(', ')}`,
        );
        assert.equal(groups.size, 3, 'the channels spread over every master');
        await Promise.all(subs.map((s) => s.opened));
        assert.ok(subs.every((s) => s.status === 200));
        const acked = new Map<string, string[]>(channels.map((ch) => [ch, []]));
        for (let round = 0; round < 3; round++) {
          await Promise.all(
            channels.map(async (ch, i) => {
              const via = (i + round) % 2 === 0 ? a : b;
              const r = await publishOk(via.base, ch, { data: `${ch}/${round}` });
              acked.get(ch)!.push(r.body.ids![0]!);
            }),
          );
        }
        await Promise.all(subs.map((s) => s.waitFor(3)));
        for (const [i, s] of subs.entries()) {
          const ch = channels[i >> 1]!;
          assert.deepEqual(
            s.events.map((e) => [e.id, e.data]),
            acked.get(ch)!.map((id, round) => [id, `${ch}/${round}`]),
            `${ch} on server ${i & 1 ? 'B' : 'A'}`,
          );
        }
        // Replay from the start on A, and a resume on B after the first event, for a channel
        // on each master.
        for (const chs of groups.values()) {
          const ch = chs[0]!;
          const ids = acked.get(ch)!;
          const all = new Subscriber(`${a.base}/sse/channels/${ch}?lastEventId=0-0`);
          const rest = new Subscriber(`${b.base}/sse/channels/${ch}`, { 'Last-Event-ID': ids[0]! });
          await Promise.all([all.waitFor(3), rest.waitFor(2)]);
          all.close();
          rest.close();
          assert.deepEqual(
            all.events.map((e) => e.id),
            ids,
          );
          assert.deepEqual(
            rest.events.map((e) => e.id),
            ids.slice(1),
          );
        }
        // One Idempotency-Key on a channel of each master: replayed by the other server, and
        // refused with another body; the same key on another channel is another record.
        for (const chs of groups.values()) {
          const [ch, other] = chs;
          const first = await publishOk(a.base, ch!, { data: 'once' }, { 'Idempotency-Key': 'k1' });
          const again = await publishOk(b.base, ch!, { data: 'once' }, { 'Idempotency-Key': 'k1' });
          assert.equal(again.headers.get('idempotent-replayed'), 'true');
          assert.deepEqual(again.body.ids, first.body.ids);
          const changed = await publish(
            b.base,
            ch!,
            { data: 'twice' },
            { 'Idempotency-Key': 'k1' },
          );
          assert.equal(changed.status, 422);
          const elsewhere = await publishOk(
            b.base,
            other!,
            { data: 'once' },
            { 'Idempotency-Key': 'k1' },
          );
          assert.notEqual(elsewhere.headers.get('idempotent-replayed'), 'true');
        }
        // The channel API lists the channels of every master, with their history.
        const page = (await (await fetch(`${a.base}/channels?limit=500&prefix=c`)).json()) as {
          channels: { name: string; historyLength: number }[];
        };
        assert.equal(page.channels.length, 100);
        assert.ok(page.channels.every((c) => c.historyLength >= 3));
        // Subscribers are counted across both servers by the channel API.
        await eventually(
          async () => {
            const res = await fetch(`${a.base}/channels/${channels[7]}`);
            return ((await res.json()) as { subscribers?: number }).subscribers === 2;
          },
          10_000,
          'the channel API to count both servers',
          100,
        );
        assert.equal(await metricValue(a.base, 'sse_broker_up'), 1);
      } finally {
        for (const s of subs) s.close();
        await a.close();
        await b.close();
      }

      // limits.maxChannels 50 across the cluster: 30 new channels through each of two servers.
      const bounded = newPrefix();
      const limits = { limits: { maxChannels: 50 } };
      const c = await clusterServer(cluster, bounded, limits);
      const d = await clusterServer(cluster, bounded, limits);
      try {
        const statuses = [];
        for (let i = 0; i < 60; i++) {
          const r = await publish(i < 30 ? c.base : d.base, `n${i}`, { data: 'x' });
          statuses.push(r.status === 503 ? String(r.body.error) : String(r.status));
        }
        const refused = statuses.filter((s) => s === 'channel_limit').length;
        t.diagnostic(`channel bound 50: ${refused} of 60 new channels refused`);
        assert.equal(refused, 10);
        assert.equal(statuses.filter((s) => s === '202').length, 50);
      } finally {
        await c.close();
        await d.close();
      }
    });

    test('a channel key of the wrong type fails that channel alone', async () => {
      const prefix = newPrefix();
      const a = await clusterServer(cluster, prefix);
      const good = new Subscriber(`${a.base}/sse/channels/good`);
      const bad = new Subscriber(`${a.base}/sse/channels/bad`);
      try {
        await Promise.all([good.opened, bad.opened]);
        await publishOk(a.base, 'bad', { data: 'before' });
        await bad.waitFor(1);
        const key = `${prefix}{bad}`;
        const owner = await cluster.ownerOf(keySlot(key));
        await redisCall(owner, 'DEL', key);
        await redisCall(owner, 'SET', key, 'not a stream');
        const refused = await publish(a.base, 'bad', { data: 'after' });
        assert.equal(refused.status, 503);
        assert.equal(refused.body.error, 'channel_unavailable');
        await eventually(() => bad.ended || bad.aborted, 10_000, 'the bad stream to end');
        assert.equal(bad.events.at(-1)?.event, 'unavailable');
        await publishOk(a.base, 'good', { data: 'still' });
        await good.waitFor(1);
        assert.equal(await metricValue(a.base, 'sse_broker_up'), 1);
      } finally {
        good.close();
        bad.close();
        await a.close();
      }
    });

    test('resharding under publishing: live channels change masters (ASK while their slot is split, MOVED after); no publish refused, every event once, in order', async (t) => {
      const prefix = newPrefix();
      const a = await clusterServer(cluster, prefix);
      const b = await clusterServer(cluster, prefix);
      const channels = Array.from({ length: 6 }, (_, i) => `move${i}`);
      const subs = channels.flatMap((ch) => [
        new Subscriber(`${a.base}/sse/channels/${ch}`),
        new Subscriber(`${b.base}/sse/channels/${ch}`),
      ]);
      const publishers: ReturnType<typeof keyedPublisher>[] = [];
      try {
        await Promise.all(subs.map((s) => s.opened));
        assert.ok(subs.every((s) => s.status === 200));
        for (const ch of channels) {
          publishers.push(keyedPublisher([a.base, b.base], ch, { intervalMs: 20, tag: ch }));
        }
        await Promise.all(publishers.map((p) => p.waitForAcks(10)));
        const masters = await cluster.masters();
        const moves: string[] = [];
        for (const ch of channels) {
          const slot = keySlot(`${prefix}{${ch}}`);
          const from = await cluster.ownerOf(slot);
          const to = masters.find((m) => m !== from)!;
          // Ten keys per MIGRATE (redis-cli's default); 200 ms with the slot split in two.
          await cluster.migrateSlot(slot, to, 10, () => new Promise((r) => setTimeout(r, 200)));
          moves.push(`${ch} slot ${slot}: ${from} -> ${to}`);
        }
        const counts = publishers.map((p) => p.acks.length);
        await Promise.all(publishers.map((p, i) => p.waitForAcks(counts[i]! + 20)));
        await Promise.all(publishers.map((p) => p.stop()));
        t.diagnostic(moves.join('; '));
        for (const [i, p] of publishers.entries()) {
          assert.deepEqual(
            Object.fromEntries(p.refusals),
            {},
            `${channels[i]}: refused publishes while resharding`,
          );
          const acked = p.acks.map((x) => x.id);
          const newest = [...acked].sort(byId).at(-1)!;
          for (const s of [subs[2 * i]!, subs[2 * i + 1]!]) {
            await eventually(
              () => s.events.some((e) => e.id === newest),
              10_000,
              `${channels[i]}: the newest event`,
            );
            const r = deliveryReport(acked, s.events);
            assert.ok(
              r.resets === 0 && r.missing === 0 && r.duplicates === 0 && r.outOfOrder === 0,
              `${channels[i]}: ${describeDelivery(r)}`,
            );
          }
        }
      } finally {
        await Promise.all(publishers.map((p) => p.stop()));
        for (const s of subs) s.close();
        await a.close();
        await b.close();
      }
    });
  });

  test('kill -9 of one master (a replica each): its channels fail over and resume, the other masters never pause; every acknowledged event the new masters hold arrives once, in order; WAIT 1 through the cluster', async (t) => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    const prefix = newPrefix();
    const a = await clusterServer(cluster, prefix);
    const b = await clusterServer(cluster, prefix);
    // A third server acknowledges only what a replica has (WAIT 1 through the cluster).
    const waits = await clusterServer(cluster, prefix, {
      broker: {
        type: 'redis',
        keyPrefix: prefix,
        redis: { cluster: cluster.seeds, waitReplicas: 1, waitTimeoutMs: 300 },
      },
    });
    const publishers: ReturnType<typeof keyedPublisher>[] = [];
    const subs: Subscriber[] = [];
    try {
      // Four channels on each master.
      const candidates = Array.from({ length: 60 }, (_, i) => `f${i}`);
      const groups = await byMaster(cluster, prefix, candidates);
      const channels = [...groups.values()].flatMap((chs) => chs.slice(0, 4));
      const owner = new Map<string, number>();
      for (const [m, chs] of groups) for (const ch of chs) owner.set(ch, m);
      for (const ch of channels) {
        subs.push(new Subscriber(`${a.base}/sse/channels/${ch}`));
        subs.push(new Subscriber(`${b.base}/sse/channels/${ch}`));
      }
      await Promise.all(subs.map((s) => s.opened));
      for (const ch of channels) {
        publishers.push(keyedPublisher([a.base, b.base], ch, { intervalMs: 50, tag: ch }));
      }
      await Promise.all(publishers.map((p) => p.waitForAcks(10)));
      for (const chs of groups.values()) {
        const r = await publishOk(waits.base, chs[0]!, { data: 'replicated' });
        assert.equal(r.body.ids?.length, 1);
      }
      const victim = owner.get(channels[0]!)!;
      const slot = keySlot(`${prefix}{${channels[0]}}`);
      const killedAt = performance.now();
      await cluster.kill(victim);
      const promoted = await cluster.waitForNewOwner(slot, victim);
      const failedOver = performance.now() - killedAt;
      const hit = channels.map((ch) => owner.get(ch) === victim);
      const resumed = await Promise.all(
        publishers.map((p, i) => (hit[i] ? p.resumedAfter(killedAt) : Promise.resolve(0))),
      );
      const counts = publishers.map((p) => p.acks.length);
      await Promise.all(publishers.map((p, i) => p.waitForAcks(counts[i]! + 10)));
      await Promise.all(publishers.map((p) => p.stop()));

      const others = publishers.filter((_, i) => !hit[i]);
      const otherLatency = others.flatMap((p) => p.acks.map((x) => x.answeredAt - x.sentAt));
      t.diagnostic(
        `master ${victim} killed, ${promoted} promoted after ${failedOver.toFixed(0)} ms; its channels resumed after ${resumed
          .filter((_, i) => hit[i])
          .map((x) => x.toFixed(0))
          .join(', ')} ms; ` +
          `other masters' channels: publish p50 ${percentile(otherLatency, 50).toFixed(1)} ms, max ${Math.max(...otherLatency).toFixed(0)} ms`,
      );
      for (const [i, p] of publishers.entries()) {
        if (hit[i]) continue;
        assert.deepEqual(
          Object.fromEntries(p.refusals),
          {},
          `${channels[i]} (on a live master) was refused publishes`,
        );
      }
      let lost = 0;
      for (const [i, p] of publishers.entries()) {
        const ch = channels[i]!;
        const entries = (await redisCall(
          await cluster.ownerOf(keySlot(`${prefix}{${ch}}`)),
          'XRANGE',
          `${prefix}{${ch}}`,
          '-',
          '+',
        )) as [string, string[]][];
        const held = new Set(entries.map(([id]) => id));
        const acked = p.acks.map((x) => x.id).filter((id) => held.has(id));
        lost += p.acks.length - acked.length;
        const newest = [...acked].sort(byId).at(-1)!;
        for (const s of [subs[2 * i]!, subs[2 * i + 1]!]) {
          await eventually(() => s.events.some((e) => e.id === newest), 10_000, `${ch}: newest`);
          const r = deliveryReport(acked, s.events);
          assert.ok(
            r.silentGaps === 0 && r.duplicates === 0 && r.outOfOrder === 0,
            `${ch}: ${describeDelivery(r)}`,
          );
          if (!hit[i]) assert.equal(r.resets, 0, `${ch}: a reset on a live master`);
        }
      }
      t.diagnostic(`acknowledged events not on the new masters: ${lost}`);
      // The promoted replica has no replica of its own: WAIT 1 cannot be met there.
      const unreplicated = await publish(
        waits.base,
        channels[0]!,
        { data: 'alone' },
        { 'Idempotency-Key': 'alone' },
      );
      assert.equal(unreplicated.status, 503, JSON.stringify(unreplicated.body));
      assert.equal(unreplicated.body.outcome, 'unknown');
      assert.ok(unreplicated.headers.get('retry-after'));
      for (const s of [a, b]) {
        assert.ok((await metricValue(s.base, 'sse_broker_failovers_total')) >= 1);
        assert.equal(await metricValue(s.base, 'sse_broker_up'), 1);
      }
    } finally {
      await Promise.all(publishers.map((p) => p.stop()));
      for (const s of subs) s.close();
      await a.close();
      await b.close();
      await waits.close();
      await cluster.stop();
    }
  });
});
