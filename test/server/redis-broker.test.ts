// The Redis Streams broker against a real redis-server: ids, replay and resets from Redis, two
// replicas on one Redis, and a Redis crash under publishing (503 while down, nothing acknowledged
// lost or repeated afterwards).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compareIds, parseEventId } from '../../services/server/src/broker/event-id.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { publish, Subscriber, startServer } from '../helpers/server.ts';

const skip = missingRedis();
const byId = (a: string, b: string) => compareIds(parseEventId(a)!, parseEventId(b)!);
let prefixes = 0;

/** A server on the Redis broker; each test gets its own key prefix. */
function redisServer(redis: TestRedis, prefix: string, partial: Record<string, unknown> = {}) {
  return startServer({
    broker: { type: 'redis', url: redis.url, keyPrefix: prefix },
    ...partial,
  });
}

describe('Redis Streams broker', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  test('publish fans out; ids are Redis entry ids; the history replays from Redis', async () => {
    const prefix = `t${prefixes++}:`;
    const t = await redisServer(redis, prefix);
    try {
      const subs = [1, 2, 3].map(() => new Subscriber(`${t.base}/sse/channels/news`));
      await Promise.all(subs.map((s) => s.opened));
      const r = await publish(t.base, 'news', [{ event: 'a', data: 'one' }, { data: { n: 2 } }]);
      assert.equal(r.status, 202);
      assert.equal(r.body.subscribers, 3);
      const [id1, id2] = r.body.ids!;
      assert.match(id1!, /^\d+-\d+$/);
      assert.ok(byId(id2!, id1!) > 0);
      for (const s of subs) {
        await s.waitFor(2);
        assert.deepEqual(
          s.events.map((e) => [e.id, e.event, e.data]),
          [
            [id1, 'a', 'one'],
            [id2, undefined, '{"n":2}'],
          ],
        );
        s.close();
      }
      const replay = new Subscriber(`${t.base}/sse/channels/news`, { 'Last-Event-ID': id1! });
      await replay.waitFor(1);
      replay.close();
      assert.deepEqual(
        replay.events.map((e) => e.id),
        [id2],
      );
      const ready = await (await fetch(`${t.base}/readyz`)).json();
      assert.deepEqual(ready, { status: 'ready', broker: { type: 'redis', up: true } });
    } finally {
      await t.close();
    }
  });

  test('ids Redis cannot continue get a reset: trimmed, ahead, malformed', async () => {
    const prefix = `t${prefixes++}:`;
    const t = await redisServer(redis, prefix, { channels: { historySize: 10 } });
    try {
      const r = await publish(
        t.base,
        'trim',
        Array.from({ length: 400 }, (_, i) => ({ data: String(i) })),
      );
      const ids = r.body.ids!;
      const old = new Subscriber(`${t.base}/sse/channels/trim`, { 'Last-Event-ID': ids[0]! });
      await old.waitFor(11);
      old.close();
      const reset = JSON.parse(old.events[0]!.data);
      assert.equal(old.events[0]!.event, 'reset');
      assert.equal(reset.reason, 'history_exceeded');
      assert.equal(reset.lastEventId, ids[0]);
      // The stream continues right after the reset's id, with every event after it.
      const rest = old.events.slice(1).map((e) => e.id!);
      assert.equal(rest[rest.length - 1], ids[399]);
      assert.ok(byId(rest[0]!, reset.resumeAfter) > 0);
      assert.deepEqual(rest, ids.slice(ids.indexOf(rest[0]!)));
      assert.equal(ids[ids.indexOf(rest[0]!) - 1], reset.resumeAfter);

      for (const [given, reason] of [
        [`${Date.now() + 3_600_000}-0`, 'unknown_id'],
        ['banana', 'malformed_id'],
      ] as const) {
        const sub = new Subscriber(`${t.base}/sse/channels/trim`, { 'Last-Event-ID': given });
        await sub.waitFor(2);
        sub.close();
        assert.equal(sub.events[0]!.event, 'reset', given);
        assert.equal(JSON.parse(sub.events[0]!.data).reason, reason);
      }
    } finally {
      await t.close();
    }
  });

  test('two replicas: a publish on A reaches subscribers on A and B in order; a subscriber moves from A to B with no gap and no duplicate', async () => {
    const prefix = `t${prefixes++}:`;
    const a = await redisServer(redis, prefix);
    const b = await redisServer(redis, prefix);
    try {
      const onA = new Subscriber(`${a.base}/sse/channels/shared`);
      const onB = new Subscriber(`${b.base}/sse/channels/shared`);
      await Promise.all([onA.opened, onB.opened]);
      const acked: string[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await publish(a.base, 'shared', { data: String(i) });
        assert.equal(r.status, 202);
        acked.push(r.body.ids![0]!);
      }
      await Promise.all([onA.waitFor(30), onB.waitFor(30)]);
      assert.deepEqual(
        onA.events.map((e) => e.id),
        acked,
      );
      assert.deepEqual(
        onB.events.map((e) => e.id),
        acked,
      );
      onA.close();
      onB.close();

      // Publishing goes on (alternately through A and B) while one client hops between them.
      const total = 200;
      let published = 0;
      const publisher = (async () => {
        for (; published < total; published++) {
          const via = published % 2 === 0 ? a : b;
          const r = await publish(via.base, 'hop', { data: String(published) });
          assert.equal(r.status, 202);
        }
      })();
      const seen: number[] = [];
      let last: string | undefined;
      let hops = 0;
      const first = new Subscriber(`${a.base}/sse/channels/hop?lastEventId=0-0`);
      await first.opened;
      const take = (s: Subscriber) => {
        for (const e of s.events) {
          if (e.event === 'reset') continue;
          seen.push(Number(e.data));
          last = e.id;
        }
      };
      await first.waitFor(3, 10_000);
      first.close();
      take(first);
      while (seen.length < total) {
        hops++;
        const via = hops % 2 === 0 ? a : b;
        const sub = new Subscriber(`${via.base}/sse/channels/hop`, { 'Last-Event-ID': last! });
        await sub.waitFor(Math.min(total - seen.length, 3 + (hops % 7)), 10_000);
        sub.close();
        for (const e of sub.events) assert.notEqual(e.event, 'reset');
        take(sub);
      }
      await publisher;
      assert.deepEqual(
        seen.slice(0, total),
        Array.from({ length: total }, (_, i) => i),
      );
      assert.ok(hops > 5);
    } finally {
      await a.close();
      await b.close();
    }

    // Both replicas gone and back: the history is in Redis, so resuming replays from it.
    const c = await redisServer(redis, prefix);
    try {
      // 0-0 is "nothing seen yet": the stream lost nothing, so it replays all of it, no reset.
      const sub = new Subscriber(`${c.base}/sse/channels/shared?lastEventId=0-0`);
      await sub.waitFor(30);
      sub.close();
      assert.deepEqual(
        sub.events.slice(0, 30).map((e) => e.data),
        Array.from({ length: 30 }, (_, i) => String(i)),
      );
    } finally {
      await c.close();
    }
  });

  test('Redis killed and restarted: 503 while down, streams stay open, every acknowledged event arrives once', async () => {
    const prefix = `t${prefixes++}:`;
    const t = await redisServer(redis, prefix, { heartbeatMs: 200 });
    const sub = new Subscriber(`${t.base}/sse/channels/crash`);
    try {
      await sub.opened;
      const acked: string[] = [];
      const refused: number[] = [];
      let stop = false;
      let n = 0;
      const publisher = (async () => {
        while (!stop) {
          const r = await publish(t.base, 'crash', { data: String(n++) });
          if (r.status === 202) acked.push(r.body.ids![0]!);
          else {
            assert.equal(r.status, 503, JSON.stringify(r.body));
            refused.push(r.status);
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await eventually(() => acked.length >= 20, 10_000, 'publishes before the crash');
      await redis.kill('SIGKILL');
      await eventually(() => refused.length >= 3, 10_000, '503 while Redis is down');
      const ready = await fetch(`${t.base}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { status: string }).status, 'broker_down');
      const pingsBefore = sub.comments.length;
      await eventually(() => sub.comments.length > pingsBefore, 5000, 'heartbeats while down');
      const ackedWhileDown = acked.length;
      await redis.restart();
      await eventually(() => acked.length >= ackedWhileDown + 20, 20_000, 'publishes after');
      stop = true;
      await publisher;
      const lastAcked = acked[acked.length - 1]!;
      await eventually(
        () => sub.events.some((e) => e.id === lastAcked),
        10_000,
        `all ${acked.length} acknowledged events`,
      );
      assert.ok(!sub.ended && !sub.aborted, 'the stream stayed open');
      // Every acknowledged event exactly once, in order. A publish whose XADD reached Redis just
      // before the kill may have been answered 503 and still be delivered (at-least-once for the
      // publisher): such extra events are allowed, at most one per refused publish, never twice.
      const got = sub.events.map((e) => e.id!);
      for (let i = 1; i < got.length; i++) assert.ok(byId(got[i]!, got[i - 1]!) > 0, 'in order');
      const seen = new Set(got);
      assert.deepEqual(
        acked.filter((id) => !seen.has(id)),
        [],
        'acknowledged events missing',
      );
      assert.ok(
        got.length - acked.length <= refused.length,
        `${got.length} got, ${acked.length} acked`,
      );
    } finally {
      sub.close();
      await t.close();
    }
  });

  test('Redis unreachable at start: the server listens, answers 503 and turns ready once Redis is up', async () => {
    const port = await freePort();
    const t = await startServer({
      broker: { type: 'redis', url: `redis://127.0.0.1:${port}`, keyPrefix: 'late:' },
    });
    let late: TestRedis | null = null;
    try {
      const ready = await fetch(`${t.base}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), {
        status: 'broker_down',
        broker: { type: 'redis', up: false },
      });
      const refused = await publish(t.base, 'late', { data: 'x' });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error, 'broker_unavailable');
      const sub = await fetch(`${t.base}/sse/channels/late`);
      assert.equal(sub.status, 503);
      assert.equal(sub.headers.get('retry-after'), '2');
      late = await startRedis(port);
      await eventually(
        async () => (await fetch(`${t.base}/readyz`)).status === 200,
        15_000,
        'ready',
      );
      assert.equal((await publish(t.base, 'late', { data: 'x' })).status, 202);
    } finally {
      await t.close();
      await late?.stop();
    }
  });
});
