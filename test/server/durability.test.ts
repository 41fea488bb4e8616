// Events outlive the process: ids never reused and resume never silent across a restart (both
// brokers, the reproduction of issue 10), and SIGTERM under publish load acknowledges nothing that
// did not reach every open stream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compareIds, parseEventId } from '../../services/server/src/broker/event-id.ts';
import { spawnServer } from '../helpers/process.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { eventually, publish, Subscriber } from '../helpers/server.ts';

const byId = (a: string, b: string) => compareIds(parseEventId(a)!, parseEventId(b)!);
const data = (n: number) => Array.from({ length: n }, (_, i) => ({ data: `e${i}` }));

describe('a restart between a client and its resume', () => {
  let redis: TestRedis | null = null;
  before(async () => {
    if (missingRedis() === null) redis = await startRedis();
  });
  after(() => redis?.stop());

  for (const broker of ['memory', 'redis'] as const) {
    test(`${broker} broker: no id reused, and the resume is never silent`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(missingRedis()!);
      const env: Record<string, string> =
        broker === 'redis'
          ? { SSE_BROKER: 'redis', REDIS_URL: redis!.url, SSE_REDIS_KEY_PREFIX: 'restart:' }
          : {};
      const first = await spawnServer(env);
      let second: Awaited<ReturnType<typeof spawnServer>> | null = null;
      try {
        const sub = new Subscriber(`${first.base}/sse/channels/demo`);
        await sub.opened;
        const before = await publish(first.base, 'demo', data(3));
        await sub.waitFor(3);
        const lastSeen = sub.events[2]!.id!;
        first.kill('SIGKILL');
        await first.exited;
        sub.close();

        second = await spawnServer(env);
        const after = await publish(second.base, 'demo', data(5));
        for (const id of after.body.ids!) {
          assert.ok(byId(id, before.body.ids![2]!) > 0, `${id} is newer than every earlier id`);
        }
        const back = new Subscriber(`${second.base}/sse/channels/demo`, {
          'Last-Event-ID': lastSeen,
        });
        if (broker === 'memory') {
          // The history was in the old process: the client is told before anything else.
          await back.waitFor(6);
          const reset = back.events[0]!;
          assert.equal(reset.event, 'reset');
          assert.equal(JSON.parse(reset.data).reason, 'unknown_id');
          assert.deepEqual(
            back.events.slice(1).map((e) => e.id),
            after.body.ids,
          );
        } else {
          // The history is in Redis: the resume continues exactly after the client's id.
          await back.waitFor(5);
          assert.deepEqual(
            back.events.map((e) => e.id),
            after.body.ids,
          );
        }
        back.close();
      } finally {
        first.kill('SIGKILL');
        second?.kill('SIGKILL');
        await second?.exited;
      }
    });
  }
});

describe('SIGTERM under publish load', () => {
  test('every acknowledged publish reached every open stream before it ended cleanly', async () => {
    const server = await spawnServer({ SSE_SHUTDOWN_TIMEOUT_MS: '5000' });
    const subs: Subscriber[] = [];
    let stop = false;
    try {
      for (let i = 0; i < 200; i++) subs.push(new Subscriber(`${server.base}/sse/channels/t`));
      await Promise.all(subs.map((s) => s.opened));
      const acked: string[] = [];
      const publisher = async () => {
        while (!stop) {
          let r: Awaited<ReturnType<typeof publish>>;
          try {
            r = await publish(server.base, 't', { data: 'x' });
          } catch {
            return; // connection refused or reset: the server is gone
          }
          // Outside the try: a refusal other than 503 fails the test.
          if (r.status === 202) acked.push(r.body.ids![0]!);
          else assert.equal(r.status, 503, JSON.stringify(r.body));
        }
      };
      const publishing = Promise.all(Array.from({ length: 8 }, publisher));
      publishing.catch(() => {}); // awaited below, where a failed status assertion surfaces
      await eventually(() => acked.length >= 200, 30_000, '200 acknowledged publishes');
      server.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      stop = true;
      await publishing;
      await Promise.all(subs.map((s) => s.closed));
      const want = new Set(acked);
      for (const s of subs) {
        assert.ok(s.ended && !s.aborted, 'a clean end of the chunked stream');
        const got = new Set(s.events.map((e) => e.id));
        const missing = [...want].filter((id) => !got.has(id));
        assert.deepEqual(missing, [], 'acknowledged events missing from a stream');
      }
    } finally {
      stop = true;
      for (const s of subs) s.close();
      server.kill('SIGKILL');
      await server.exited;
    }
  });
});
