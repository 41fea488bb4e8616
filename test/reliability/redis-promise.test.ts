// What a 202 promises, and what one Redis must not break (the Redis broker, the memory broker
// where the same promise applies):
// - acknowledged = delivered: a subscriber lapped by publishers that keep 4 batches of 1000 in
//   flight gets every acknowledged id once, in order, or an `event: reset` before a gap;
// - a replica paused while trimming removes what its reader had not read: its subscriber gets the
//   reset before the first event after the gap;
// - a hung Redis (SIGSTOP) turns /readyz 503 within 3 s and sse_broker_up 0, and back by itself;
// - one channel key of the wrong type (DEL + SET) breaks that channel only;
// - a replay storm (1000 concurrent resumes of a 1 MB history) is served in full, none refused;
// - limits.maxChannels on Redis counts channels in Redis (shared by replicas), and a channel with
//   no subscribers and no history holds no slot.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { redisCall } from '../../loadtest/src/redis-ha.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { visitChannelsInTurn } from '../helpers/channel-visits.ts';
import {
  byId,
  deliveredAsPromised,
  deliveryReport,
  describeDelivery,
  inFlight,
  paddedEvents,
} from '../helpers/delivery.ts';
import { metricValue } from '../helpers/metrics-text.ts';
import { spawnServer } from '../helpers/process.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { replayStorm } from '../helpers/replay-storm.ts';
import { publish, Subscriber, startServer, type TestServer } from '../helpers/server.ts';

const skip = missingRedis();
const BROKERS = ['memory', 'redis'] as const;
type BrokerType = (typeof BROKERS)[number];
let prefixes = 0;
const newPrefix = () => `rp${prefixes++}-${process.pid}:`;

/** A server on the given broker (Redis: its own key prefix unless one is given). */
function serverOn(
  broker: BrokerType,
  redis: TestRedis | null,
  partial: Record<string, unknown> = {},
  prefix = newPrefix(),
): Promise<TestServer> {
  if (broker === 'memory') return startServer(partial);
  return startServer({
    broker: { type: 'redis', url: redis!.url, keyPrefix: prefix },
    ...partial,
  });
}

/** /readyz's status, 0 when it does not answer within a second. */
async function readyStatus(base: string): Promise<number> {
  try {
    const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

/** A subscribe request's answer: status and the first bytes of its body (at most `ms`). */
async function streamAnswer(
  url: string,
  headers: Record<string, string> = {},
  ms = 3000,
): Promise<{ status: number; body: string }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  let status = 0;
  let body = '';
  try {
    const res = await fetch(url, { headers, signal: ac.signal });
    status = res.status;
    for await (const chunk of res.body!) {
      body += Buffer.from(chunk).toString('utf8');
      if (body.length > 8192) break;
    }
  } catch {
    // aborted: an open stream, or no answer at all (status stays 0)
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return { status, body };
}

/** Waits (until `deadline`) for an event with id >= `newest`; true when it came. */
async function arrivedUpTo(sub: Subscriber, newest: string, deadline: number): Promise<boolean> {
  let checked = 0;
  for (;;) {
    const events = sub.events;
    for (; checked < events.length; checked++) {
      const id = events[checked]!.id;
      if (events[checked]!.event !== 'reset' && id && byId(id, newest) >= 0) return true;
    }
    if (Date.now() > deadline || sub.ended || sub.aborted) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One lap: a subscriber on `channel`, `batches` publishes of 1000 events with 4 in flight. */
async function lap(base: string, channel: string, batches: number, deadline: number) {
  const sub = new Subscriber(`${base}/sse/channels/${channel}`);
  try {
    await sub.opened;
    assert.equal(sub.status, 200);
    const acked: string[] = [];
    const refused: string[] = [];
    await inFlight(batches, 4, async (b) => {
      const events = Array.from({ length: 1000 }, (_, i) => ({ data: `${b}-${i}` }));
      const r = await publish(base, channel, events);
      if (r.status === 202) acked.push(...r.body.ids!);
      else refused.push(`${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    });
    const newest = [...acked].sort(byId).at(-1)!;
    const arrived = await arrivedUpTo(sub, newest, deadline);
    return { report: deliveryReport(acked, sub.events), refused, arrived, newest };
  } finally {
    sub.close();
  }
}

function serverEnv(broker: BrokerType, redis: TestRedis | null): Record<string, string> {
  if (broker === 'memory') return {};
  return { SSE_BROKER: 'redis', REDIS_URL: redis!.url, SSE_REDIS_KEY_PREFIX: newPrefix() };
}

describe('acknowledged = delivered: a subscriber lapped by 4 batches of 1000 in flight', () => {
  let redis: TestRedis | null = null;
  before(async () => {
    if (skip === null) redis = await startRedis();
  });
  after(() => redis?.stop());

  // The server is a process of its own (publisher and subscriber here): how far Redis live
  // delivery falls behind depends on timing, so the short case runs 5 laps, each on a new channel.
  const cases = [
    { batches: 5, laps: 5, boundMs: 60_000 },
    { batches: 60, laps: 1, boundMs: 90_000 },
  ];
  for (const broker of BROKERS) {
    for (const { batches, laps, boundMs } of cases) {
      test(`${broker} broker: ${batches} batches of 1000 events, 4 in flight${laps > 1 ? ` (${laps} laps)` : ''}: every acknowledged id arrives once, in order, or a reset comes before the gap`, async (ctx) => {
        if (broker === 'redis' && redis === null) return ctx.skip(skip!);
        const deadline = Date.now() + boundMs;
        const srv = await spawnServer(serverEnv(broker, redis));
        try {
          const failed: string[] = [];
          for (let l = 0; l < laps; l++) {
            const { report, refused, arrived, newest } = await lap(
              srv.base,
              `lap-${l}`,
              batches,
              deadline,
            );
            const line = `lap ${l}: ${batches} x 1000 published, ${refused.length} refused, newest acknowledged id arrived: ${arrived}; ${describeDelivery(report)}`;
            ctx.diagnostic(line);
            if (!deliveredAsPromised(report)) failed.push(line);
            else if (!arrived)
              failed.push(`lap ${l}: the newest acknowledged id ${newest} never arrived`);
            else if (refused.length > 0) failed.push(`lap ${l}: refused ${refused.join(', ')}`);
          }
          assert.equal(
            failed.length,
            0,
            `${failed.length} of ${laps} laps broke the promise: ${failed.join(' | ')}`,
          );
        } finally {
          await srv.stop();
        }
      });
    }
  }
});

describe('a replica whose reader is lapped (trimming wins)', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  // Replica B is paused (SIGSTOP) while A publishes 3 x 1000 events into a stream that keeps at
  // most ~100 (maxStreamLength 100, no trim grace): when B runs again, the entries after its
  // reader's cursor are gone. Its live subscriber must get `event: reset` (history_exceeded)
  // before the first event after the gap, then the events B could still read, in order.
  test('its live subscriber gets a reset before the first event after the gap, never a silent gap', async (ctx) => {
    const prefix = newPrefix();
    const env = {
      SSE_BROKER: 'redis',
      REDIS_URL: redis.url,
      SSE_REDIS_KEY_PREFIX: prefix,
      SSE_HISTORY_SIZE: '100',
      SSE_REDIS_MAX_STREAM_LENGTH: '100',
      SSE_REDIS_TRIM_GRACE_MS: '0',
    };
    const a = await spawnServer(env);
    const b = await spawnServer(env);
    const sub = new Subscriber(`${b.base}/sse/channels/lapped`);
    try {
      await sub.opened;
      const acked: string[] = [];
      const first = await publish(a.base, 'lapped', { data: 'before' });
      acked.push(...first.body.ids!);
      await sub.waitFor(1);
      b.kill('SIGSTOP');
      try {
        for (let batch = 0; batch < 3; batch++) {
          const events = Array.from({ length: 1000 }, (_, i) => ({ data: `${batch}-${i}` }));
          const r = await publish(a.base, 'lapped', events);
          assert.equal(r.status, 202);
          acked.push(...r.body.ids!);
        }
      } finally {
        b.kill('SIGCONT');
      }
      const after = await publish(a.base, 'lapped', { data: 'after' });
      acked.push(...after.body.ids!);
      const newest = after.body.ids![0]!;
      assert.ok(await arrivedUpTo(sub, newest, Date.now() + 20_000), 'the newest event arrived');
      const report = deliveryReport(acked, sub.events);
      ctx.diagnostic(describeDelivery(report));
      assert.ok(deliveredAsPromised(report), describeDelivery(report));
      assert.ok(report.resets >= 1, 'a reset came');
      assert.ok(report.missing > 0, 'entries were trimmed before B read them');
      // The reset names where the subscriber stood and where it goes on.
      const at = sub.events.findIndex((e) => e.event === 'reset');
      const reset = JSON.parse(sub.events[at]!.data) as Record<string, string>;
      assert.equal(reset.reason, 'history_exceeded');
      assert.equal(reset.lastEventId, sub.events[at - 1]!.id);
      assert.equal(sub.events[at]!.id, reset.resumeAfter);
      assert.ok(byId(sub.events[at + 1]!.id!, reset.resumeAfter) > 0);
    } finally {
      sub.close();
      b.kill('SIGCONT');
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('Redis hung (SIGSTOP)', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  test('/readyz answers 503 within 3 s and sse_broker_up is 0; after SIGCONT it is 200 again by itself', async (ctx) => {
    const t = await serverOn('redis', redis);
    try {
      await eventually(async () => (await readyStatus(t.base)) === 200, 10_000, 'ready at start');
      assert.equal(await metricValue(t.base, 'sse_broker_up'), 1);
      redis.pause();
      const stoppedAt = Date.now();
      let downAfter = -1;
      // 3 s is the contract; 500 ms more for this test's own polling.
      await eventually(
        async () => {
          if ((await readyStatus(t.base)) !== 503) return false;
          downAfter = Date.now() - stoppedAt;
          return true;
        },
        3500,
        '/readyz 503 within 3 s of SIGSTOP',
      ).catch(async (err: Error) => {
        throw new Error(
          `${err.message}: still ${await readyStatus(t.base)}, sse_broker_up ${await metricValue(t.base, 'sse_broker_up')}`,
        );
      });
      const down = await fetch(`${t.base}/readyz`, { signal: AbortSignal.timeout(1000) });
      assert.equal(((await down.json()) as { status: string }).status, 'broker_down');
      assert.equal(await metricValue(t.base, 'sse_broker_up'), 0);
      redis.resume();
      const resumedAt = Date.now();
      await eventually(async () => (await readyStatus(t.base)) === 200, 20_000, 'ready again');
      ctx.diagnostic(
        `/readyz 503 ${downAfter} ms after SIGSTOP; 200 again ${Date.now() - resumedAt} ms after SIGCONT`,
      );
      assert.equal(await metricValue(t.base, 'sse_broker_up'), 1);
    } finally {
      redis.resume();
      await t.close();
    }
  });
});

describe('one channel key of the wrong type breaks that channel only', {
  skip: skip ?? false,
}, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  test('after DEL + SET <prefix>bad: good keeps answering 202 and delivering; bad answers 503 to publish and to a new subscriber; /readyz stays 200', async (ctx) => {
    const prefix = newPrefix();
    const t = await serverOn('redis', redis, {}, prefix);
    const good = new Subscriber(`${t.base}/sse/channels/good`);
    const bad = new Subscriber(`${t.base}/sse/channels/bad`);
    try {
      await Promise.all([good.opened, bad.opened]);
      assert.equal((await publish(t.base, 'good', { data: 'g-before' })).status, 202);
      assert.equal((await publish(t.base, 'bad', { data: 'b-before' })).status, 202);
      await Promise.all([good.waitFor(1), bad.waitFor(1)]);

      await redisCall(redis.port, 'DEL', `${prefix}bad`);
      await redisCall(redis.port, 'SET', `${prefix}bad`, 'x');

      for (let i = 0; i < 3; i++) {
        const r = await publish(t.base, 'good', { data: `g${i}` });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        await good.waitFor(2 + i, 10_000).catch((err: Error) => {
          throw new Error(`good's subscriber after the bad key: ${err.message} (publish ${i})`);
        });
        assert.equal(good.events.at(-1)!.data, `g${i}`);
      }
      const badPublish = await publish(t.base, 'bad', { data: 'b-after' });
      assert.equal(badPublish.status, 503, JSON.stringify(badPublish.body));
      const plain = await streamAnswer(`${t.base}/sse/channels/bad`);
      assert.equal(plain.status, 503, `a new subscriber of bad: ${plain.status} ${plain.body}`);
      const es = await streamAnswer(`${t.base}/sse/channels/bad`, {
        Accept: 'text/event-stream',
      });
      assert.ok(
        es.status === 503 || (es.status === 200 && es.body.includes('event: unavailable')),
        `a new EventSource subscriber of bad: ${es.status} ${JSON.stringify(es.body.slice(0, 200))}`,
      );
      assert.equal(await readyStatus(t.base), 200);
      // And good still works after all of that.
      assert.equal((await publish(t.base, 'good', { data: 'g-last' })).status, 202);
      await good.waitFor(5, 10_000);
      ctx.diagnostic(
        `good got ${good.events.length} events; bad publish ${badPublish.status} ${JSON.stringify(badPublish.body)}; new bad subscriber ${plain.status} / EventSource ${es.status}`,
      );
    } finally {
      good.close();
      bad.close();
      await t.close();
    }
  });
});

describe('replay storm: 1000 concurrent resumes of a 1000-event, 1 KB-per-event history', () => {
  let redis: TestRedis | null = null;
  before(async () => {
    if (skip === null) redis = await startRedis();
  });
  after(() => redis?.stop());

  for (const broker of BROKERS) {
    test(`${broker} broker: every resume answered 200 with its full replay (999 events), none refused`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const env = { ...serverEnv(broker, redis), SSE_HISTORY_MAX_BYTES: String(8 * 1024 * 1024) };
      const srv = await spawnServer(env);
      try {
        const ids: string[] = [];
        for (let b = 0; b < 20; b++) {
          const r = await publish(srv.base, 'storm', paddedEvents(50, 1000, `${b}-`));
          assert.equal(r.status, 202, JSON.stringify(r.body));
          ids.push(...r.body.ids!);
        }
        const result = await replayStorm(
          {
            port: srv.port,
            request: `GET /sse/channels/storm HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${ids[0]}\r\n\r\n`,
            expected: ids.slice(1),
            timeoutMs: 60_000,
          },
          1000,
        );
        ctx.diagnostic(
          `${result.clients} resumes in ${result.elapsedMs} ms: ${result.complete} complete; statuses ${JSON.stringify(result.statuses)}; first failures: ${JSON.stringify(result.failures)}`,
        );
        assert.equal(
          result.complete,
          1000,
          `${result.failed} of 1000 resumes failed, statuses ${JSON.stringify(result.statuses)}, e.g. ${result.failures.join(' | ')}`,
        );
      } finally {
        await srv.stop();
      }
    });
  }
});

/** Publishes one event to each channel in turn; the refusals as [channel, status, error]. */
async function publishEach(base: string, channels: string[]) {
  const refused: [string, number, string][] = [];
  for (const ch of channels) {
    const r = await publish(base, ch, { data: 'x' });
    if (r.status !== 202) refused.push([ch, r.status, String(r.body.error)]);
  }
  return refused;
}

describe('limits.maxChannels with the Redis broker', { skip: skip ?? false }, () => {
  test('maxChannels 50: publishing to 60 new channels refuses the 10 beyond 50 with 503 channel_limit', async (ctx) => {
    const redis = await startRedis();
    const t = await serverOn('redis', redis, { limits: { maxChannels: 50 } });
    try {
      const names = Array.from({ length: 60 }, (_, i) => `new-${i}`);
      const refused = await publishEach(t.base, names);
      ctx.diagnostic(`refused: ${JSON.stringify(refused)}`);
      assert.deepEqual(
        refused,
        names.slice(50).map((ch) => [ch, 503, 'channel_limit']),
        `${60 - refused.length} of 60 new channels accepted`,
      );
      // A channel it already holds still takes events.
      assert.equal((await publish(t.base, 'new-0', { data: 'again' })).status, 202);
    } finally {
      await t.close();
      await redis.stop();
    }
  });

  test('two servers on one Redis share the bound: 30 new channels on A and 30 on B -> 10 refused in all', async (ctx) => {
    const redis = await startRedis();
    const prefix = newPrefix();
    const a = await serverOn('redis', redis, { limits: { maxChannels: 50 } }, prefix);
    const b = await serverOn('redis', redis, { limits: { maxChannels: 50 } }, prefix);
    try {
      const onA = await publishEach(
        a.base,
        Array.from({ length: 30 }, (_, i) => `a-${i}`),
      );
      const onB = await publishEach(
        b.base,
        Array.from({ length: 30 }, (_, i) => `b-${i}`),
      );
      const refused = [...onA, ...onB];
      ctx.diagnostic(
        `refused on A: ${onA.length}, on B: ${onB.length}: ${JSON.stringify(refused)}`,
      );
      assert.equal(refused.length, 10, `${refused.length} refused, expected 10`);
      for (const [ch, status, error] of refused) {
        assert.deepEqual([status, error], [503, 'channel_limit'], ch);
      }
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  });

  test('maxChannels 100: 200 channels subscribed and closed one after another all open; a new channel publishes right after', async (ctx) => {
    const redis = await startRedis();
    const t = await serverOn('redis', redis, { limits: { maxChannels: 100 } });
    try {
      const refused = await visitChannelsInTurn(t.base, 'visit-', 200);
      const after = await publish(t.base, 'fresh-after-visits', { data: 'x' });
      ctx.diagnostic(
        `${200 - refused.length} of 200 opened; first refused: ${refused.slice(0, 3).join(', ')}; publish to a new channel after: ${after.status}`,
      );
      assert.equal(refused.length, 0, `${refused.length} of 200 refused, from ${refused[0]}`);
      assert.equal(after.status, 202, JSON.stringify(after.body));
    } finally {
      await t.close();
      await redis.stop();
    }
  });
});
