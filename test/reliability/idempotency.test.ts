// Idempotent publish: `Idempotency-Key` (1-128 characters 0x21-0x7E) on POST
// /channels/:channel/events makes a retried publish safe. The same key, channel and body again
// answers what the first request answered (202, the same ids, `Idempotent-Replayed: true`) and
// publishes nothing; another body with the key is 422; a repeat while the first is in flight is
// 409 with Retry-After; the key holds across servers on one Redis and across a restart; a 503 whose
// outcome is unknown says so, and a retry with the key after it never duplicates the events.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnServer } from '../helpers/process.ts';
import { statusOf } from '../helpers/raw-socket.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { xrangeData } from '../helpers/redis-client.ts';
import {
  eventually,
  publish,
  rawExchange,
  Subscriber,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const skip = missingRedis();
const BROKERS = ['memory', 'redis'] as const;
type BrokerType = (typeof BROKERS)[number];
let prefixes = 0;
const newPrefix = () => `idem${prefixes++}-${process.pid}:`;
const KEY = 'Idempotency-Key';
const replayed = (r: { headers: Headers }) => r.headers.get('idempotent-replayed');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function serverOn(
  broker: BrokerType,
  redis: TestRedis | null,
  prefix = newPrefix(),
): Promise<TestServer> {
  if (broker === 'memory') return startServer();
  return startServer({ broker: { type: 'redis', url: redis!.url, keyPrefix: prefix } });
}

/** Rejects when `p` has not settled within `ms` (a publish must answer, not hang). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The data of a subscriber's events up to (and without) the marker event, once it came. */
async function dataBefore(sub: Subscriber, marker: string): Promise<string[]> {
  await eventually(() => sub.events.some((e) => e.data === marker), 10_000, `event ${marker}`);
  const all = sub.events.filter((e) => e.event !== 'reset').map((e) => e.data);
  return all.slice(0, all.indexOf(marker));
}

const BODY = [{ event: 'order', data: 'one' }, { data: { n: 2 } }];
const BODY_DATA = ['one', '{"n":2}'];

describe('Idempotency-Key on publish, both brokers', () => {
  let redis: TestRedis | null = null;
  before(async () => {
    if (skip === null) redis = await startRedis();
  });
  after(() => redis?.stop());

  for (const broker of BROKERS) {
    test(`${broker} broker: the same key, channel and body again answers the first answer (202, same ids, Idempotent-Replayed: true) and publishes nothing`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const t = await serverOn(broker, redis);
      const live = new Subscriber(`${t.base}/sse/channels/orders`);
      let replay: Subscriber | null = null;
      try {
        await live.opened;
        const anchor = await publish(t.base, 'orders', { data: 'anchor' });
        const first = await publish(t.base, 'orders', BODY, { [KEY]: 'order-7' });
        assert.equal(first.status, 202, JSON.stringify(first.body));
        assert.notEqual(replayed(first), 'true', 'the first answer is not a replay');
        const again = await publish(t.base, 'orders', BODY, { [KEY]: 'order-7' });
        ctx.diagnostic(
          `first ${first.status} ${JSON.stringify(first.body)}; again ${again.status} ${JSON.stringify(again.body)} Idempotent-Replayed: ${replayed(again)}`,
        );
        assert.equal(again.status, 202);
        assert.deepEqual(again.body.ids, first.body.ids, 'the same ids');
        assert.equal(replayed(again), 'true');
        await publish(t.base, 'orders', { data: 'marker' });
        assert.deepEqual(await dataBefore(live, 'marker'), ['anchor', ...BODY_DATA]);
        replay = new Subscriber(`${t.base}/sse/channels/orders`, {
          'Last-Event-ID': anchor.body.ids![0]!,
        });
        assert.deepEqual(
          await dataBefore(replay, 'marker'),
          BODY_DATA,
          'the history holds them once',
        );
      } finally {
        live.close();
        replay?.close();
        await t.close();
      }
    });

    test(`${broker} broker: the same key with another body answers 422 idempotency_key_reused and publishes nothing`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const t = await serverOn(broker, redis);
      let replay: Subscriber | null = null;
      try {
        const anchor = await publish(t.base, 'orders', { data: 'anchor' });
        const first = await publish(t.base, 'orders', BODY, { [KEY]: 'order-8' });
        assert.equal(first.status, 202);
        const other = await publish(t.base, 'orders', [{ data: 'something else' }], {
          [KEY]: 'order-8',
        });
        ctx.diagnostic(`another body with the key: ${other.status} ${JSON.stringify(other.body)}`);
        assert.equal(other.status, 422, JSON.stringify(other.body));
        assert.equal(other.body.error, 'idempotency_key_reused');
        assert.equal(typeof other.body.message, 'string');
        // The first request's answer still stands.
        const again = await publish(t.base, 'orders', BODY, { [KEY]: 'order-8' });
        assert.deepEqual([again.status, again.body.ids], [202, first.body.ids]);
        await publish(t.base, 'orders', { data: 'marker' });
        replay = new Subscriber(`${t.base}/sse/channels/orders`, {
          'Last-Event-ID': anchor.body.ids![0]!,
        });
        assert.deepEqual(await dataBefore(replay, 'marker'), BODY_DATA);
      } finally {
        replay?.close();
        await t.close();
      }
    });

    test(`${broker} broker: a key over 128 characters, or holding a space or a non-ASCII character, answers 400; 1 and 128 printable characters are taken`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const t = await serverOn(broker, redis);
      try {
        const answers: string[] = [];
        for (const [key, status] of [
          ['k'.repeat(129), 400],
          ['a b', 400],
          ['~', 202],
          [`!${'Az09-_.:~'.repeat(14)}${'!'.repeat(1)}`, 202], // 128 characters
        ] as const) {
          assert.ok(status === 400 || key.length <= 128);
          const r = await publish(t.base, 'keys', { data: 'x' }, { [KEY]: key });
          answers.push(`${key.length} chars ${JSON.stringify(key.slice(0, 12))}: ${r.status}`);
          assert.equal(r.status, status, `key of ${key.length} characters ${JSON.stringify(key)}`);
          if (status === 400) assert.equal(typeof r.body.error, 'string');
        }
        // Non-ASCII: sent as raw UTF-8 bytes (fetch would refuse to send it).
        const body = '{"data":"x"}';
        const raw = await rawExchange(
          t.port,
          `POST /channels/keys/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${KEY}: clé-1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
        answers.push(`"clé-1": ${statusOf(raw)}`);
        ctx.diagnostic(answers.join('; '));
        assert.equal(statusOf(raw), 400, raw.slice(0, 300));
        assert.match(raw, /content-type: application\/json/i);
      } finally {
        await t.close();
      }
    });

    test(`${broker} broker: the same key on another channel is another key`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const t = await serverOn(broker, redis);
      try {
        const one = await publish(t.base, 'first', BODY, { [KEY]: 'shared-key' });
        const two = await publish(t.base, 'second', BODY, { [KEY]: 'shared-key' });
        const oneAgain = await publish(t.base, 'first', BODY, { [KEY]: 'shared-key' });
        ctx.diagnostic(
          `first ${JSON.stringify(one.body.ids)}; second ${two.status} ${JSON.stringify(two.body.ids)} replayed=${replayed(two)}; first again ${JSON.stringify(oneAgain.body.ids)} replayed=${replayed(oneAgain)}`,
        );
        assert.equal(two.status, 202);
        assert.notEqual(replayed(two), 'true');
        assert.notDeepEqual(two.body.ids, one.body.ids);
        assert.deepEqual([oneAgain.status, oneAgain.body.ids], [202, one.body.ids]);
        assert.equal(replayed(oneAgain), 'true');
      } finally {
        await t.close();
      }
    });
  }
});

describe('Idempotency-Key with the Redis broker', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  test('while the first request with the key is in flight (Redis hung), a repeat answers 409 idempotency_key_in_flight with Retry-After', async (ctx) => {
    const t = await serverOn('redis', redis);
    try {
      assert.equal((await publish(t.base, 'slow', { data: 'warm' })).status, 202);
      redis.pause();
      const first = publish(t.base, 'slow', BODY, { [KEY]: 'in-flight-1' });
      first.catch(() => {});
      await sleep(150); // the first request has reached the server and waits on Redis
      const second = await within(
        publish(t.base, 'slow', BODY, { [KEY]: 'in-flight-1' }),
        10_000,
        'the repeat while the first is in flight',
      );
      redis.resume();
      const firstAnswer = await within(first, 15_000, 'the first request');
      ctx.diagnostic(
        `repeat: ${second.status} ${JSON.stringify(second.body)} Retry-After ${second.headers.get('retry-after')}; first: ${firstAnswer.status} ${JSON.stringify(firstAnswer.body)}`,
      );
      assert.equal(second.status, 409, JSON.stringify(second.body));
      assert.equal(second.body.error, 'idempotency_key_in_flight');
      assert.ok(Number(second.headers.get('retry-after')) > 0, 'Retry-After');
    } finally {
      redis.resume();
      await t.close();
    }
  });

  test('two servers on one Redis: published on A, the same request on B is replayed', async (ctx) => {
    const prefix = newPrefix();
    const a = await serverOn('redis', redis, prefix);
    const b = await serverOn('redis', redis, prefix);
    const onB = new Subscriber(`${b.base}/sse/channels/shared`);
    try {
      await onB.opened;
      const first = await publish(a.base, 'shared', BODY, { [KEY]: 'across-1' });
      const again = await publish(b.base, 'shared', BODY, { [KEY]: 'across-1' });
      ctx.diagnostic(
        `on A ${JSON.stringify(first.body.ids)}; on B ${again.status} ${JSON.stringify(again.body.ids)} replayed=${replayed(again)}`,
      );
      assert.equal(first.status, 202);
      assert.deepEqual([again.status, again.body.ids], [202, first.body.ids]);
      assert.equal(replayed(again), 'true');
      await publish(a.base, 'shared', { data: 'marker' });
      assert.deepEqual(await dataBefore(onB, 'marker'), BODY_DATA);
      const stream = await xrangeData(redis.port, `${prefix}shared`);
      assert.equal(stream.length, 3, 'the two events and the marker in Redis');
    } finally {
      onB.close();
      await a.close();
      await b.close();
    }
  });

  test('after a restart of the server process the same request is replayed', async (ctx) => {
    const prefix = newPrefix();
    const env = { SSE_BROKER: 'redis', REDIS_URL: redis.url, SSE_REDIS_KEY_PREFIX: prefix };
    let srv = await spawnServer(env);
    try {
      const first = await publish(srv.base, 'durable', BODY, { [KEY]: 'restart-1' });
      assert.equal(first.status, 202);
      await srv.stop();
      srv = await spawnServer(env);
      const again = await publish(srv.base, 'durable', BODY, { [KEY]: 'restart-1' });
      const stream = await xrangeData(redis.port, `${prefix}durable`);
      ctx.diagnostic(
        `before ${JSON.stringify(first.body.ids)}; after the restart ${again.status} ${JSON.stringify(again.body.ids)} replayed=${replayed(again)}; ${stream.length} entries in Redis`,
      );
      assert.deepEqual([again.status, again.body.ids], [202, first.body.ids]);
      assert.equal(replayed(again), 'true');
      assert.equal(stream.length, 2);
    } finally {
      await srv.stop();
    }
  });

  test('Redis hung: the publish answers 503 saying its outcome; retried with the key after SIGCONT it is never duplicated', async (ctx) => {
    const prefix = newPrefix();
    const t = await serverOn('redis', redis, prefix);
    const sub = new Subscriber(`${t.base}/sse/channels/unsure`);
    try {
      await sub.opened;
      assert.equal((await publish(t.base, 'unsure', { data: 'anchor' })).status, 202);
      redis.pause();
      const started = Date.now();
      const refused = await within(
        publish(t.base, 'unsure', { data: 'once' }, { [KEY]: 'unsure-1' }),
        10_000,
        'a publish while Redis is hung',
      );
      const took = Date.now() - started;
      redis.resume();
      // Retry with the key until it is taken (a 409 or 503 meanwhile is fine).
      const retries: number[] = [];
      let retried = await publish(t.base, 'unsure', { data: 'once' }, { [KEY]: 'unsure-1' });
      const deadline = Date.now() + 20_000;
      while (retried.status !== 202 && Date.now() < deadline) {
        retries.push(retried.status);
        await sleep(250);
        retried = await publish(t.base, 'unsure', { data: 'once' }, { [KEY]: 'unsure-1' });
      }
      await publish(t.base, 'unsure', { data: 'marker' });
      const seen = await dataBefore(sub, 'marker');
      const stream = await xrangeData(redis.port, `${prefix}unsure`);
      const inRedis = stream.filter(([, d]) => d === 'once');
      ctx.diagnostic(
        `hung: ${refused.status} after ${took} ms ${JSON.stringify(refused.body)}; retries before 202: ${JSON.stringify(retries)}; ` +
          `retry ${retried.status} ${JSON.stringify(retried.body)} replayed=${replayed(retried)}; ` +
          `"once" in Redis ${inRedis.length}x (XLEN ${stream.length}), at the subscriber ${seen.filter((d) => d === 'once').length}x`,
      );
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.ok(
        refused.body.outcome === 'unknown' || refused.body.outcome === 'not_published',
        `a 503 says its outcome: ${JSON.stringify(refused.body)}`,
      );
      assert.equal(retried.status, 202, `retries: ${JSON.stringify(retries)}`);
      assert.equal(inRedis.length, 1, `"once" is ${inRedis.length} times in the stream`);
      assert.deepEqual(retried.body.ids, [inRedis[0]![0]]);
      assert.deepEqual(seen, ['anchor', 'once']);
    } finally {
      redis.resume();
      sub.close();
      await t.close();
    }
  });
});
