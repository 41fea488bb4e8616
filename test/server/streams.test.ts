// One stream, many channels (GET /sse/streams): the route's answers, the envelope, and the one
// cursor that resumes every channel exactly after a cut (2, 10 and 32 channels, interleaved
// publishing; memory and Redis; across two replicas on one Redis), a channel whose history cannot
// continue it getting its own reset, channels added and dropped between reconnects, cursors that
// are malformed, oversized or of another version.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeCursor, MAX_CURSOR_CHARS } from '../../services/server/src/wire/stream-cursor.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import {
  openStreams,
  publish,
  type SseEvent,
  Subscriber,
  startServer,
  subscribers,
  type TestServer,
} from '../helpers/server.ts';

const redisSkip = missingRedis();

interface Got {
  channel: string | null;
  data: string;
  event: string | undefined;
  id: string;
}

const opened = (e: SseEvent): Got => {
  const { channel, data } = JSON.parse(e.data) as { channel: string | null; data: string };
  return { channel, data, event: e.event, id: e.id! };
};

const streamUrl = (base: string, channels: readonly string[]) =>
  `${base}/sse/streams?${channels.map((c) => `channel=${c}`).join('&')}`;

/** Publishes `n` events spread over the channels at random, each data `<channel>:<k>`. */
async function publishSpread(
  base: string,
  channels: readonly string[],
  n: number,
  counts: Map<string, number>,
) {
  for (let i = 0; i < n; i++) {
    const channel = channels[Math.floor(Math.random() * channels.length)]!;
    const k = counts.get(channel) ?? 0;
    counts.set(channel, k + 1);
    const r = await publish(base, channel, { data: `${channel}:${k}` });
    assert.equal(r.status, 202);
  }
}

/**
 * A subscriber on `channels` takes part of a stream of interleaved publishes, is cut, more is
 * published, and a second subscriber (on `resumeAt`, maybe another replica) resumes from the
 * cursor of the last event the first one got: together they saw every event of every channel
 * exactly once, in order.
 */
async function cutAndResume(first: string, resumeAt: string, channels: readonly string[]) {
  const counts = new Map<string, number>();
  const a = new Subscriber(streamUrl(first, channels));
  await a.opened;
  assert.equal(a.status, 200);
  await publishSpread(first, channels, 60, counts);
  const cutAfter = 10 + Math.floor(Math.random() * 40);
  await a.waitFor(cutAfter);
  a.close();
  const seenBefore = a.events.map(opened);
  const cursor = seenBefore.at(-1)!.id;
  await publishSpread(resumeAt, channels, 40, counts);
  const total = [...counts.values()].reduce((x, y) => x + y, 0);
  const b = new Subscriber(streamUrl(resumeAt, channels), { 'Last-Event-ID': cursor });
  await b.waitFor(total - seenBefore.length, 15_000);
  b.close();
  const all = [...seenBefore, ...b.events.map(opened)];
  assert.equal(
    all.filter((e) => e.event === 'reset').length,
    0,
    'no reset: every history covers its cursor',
  );
  for (const channel of channels) {
    const got = all.filter((e) => e.channel === channel).map((e) => e.data);
    const want = Array.from({ length: counts.get(channel) ?? 0 }, (_, k) => `${channel}:${k}`);
    assert.deepEqual(got, want, `channel ${channel}`);
  }
}

function routeTests(serverFor: (partial?: Record<string, unknown>) => Promise<TestServer>) {
  for (const n of [2, 10, 32]) {
    test(`exact resume of ${n} channels across a cut, interleaved publishing`, async () => {
      const t = await serverFor();
      try {
        const channels = Array.from({ length: n }, (_, i) => `ch${n}.${i}`);
        await cutAndResume(t.base, t.base, channels);
      } finally {
        await t.close();
      }
    });
  }

  test('a channel whose history no longer covers the cursor gets its own reset, the others none', async () => {
    const t = await serverFor({ channels: { historySize: 5 } });
    try {
      const s = new Subscriber(streamUrl(t.base, ['keep', 'lose']));
      await s.opened;
      await publish(t.base, 'keep', { data: 'k0' });
      await publish(t.base, 'lose', { data: 'l0' });
      await s.waitFor(2);
      s.close();
      const cursor = s.events.at(-1)!.id!;
      await publish(
        t.base,
        'lose',
        Array.from({ length: 20 }, (_, i) => ({ data: `l${i + 1}` })),
      );
      await publish(t.base, 'keep', { data: 'k1' });
      const r = new Subscriber(streamUrl(t.base, ['keep', 'lose']), { 'Last-Event-ID': cursor });
      await r.waitFor(7);
      r.close();
      const got = r.events.map(opened);
      const resets = got.filter((e) => e.event === 'reset');
      assert.equal(resets.length, 1);
      assert.equal(resets[0]!.channel, 'lose');
      assert.equal((JSON.parse(resets[0]!.data) as { reason: string }).reason, 'history_exceeded');
      assert.deepEqual(
        got.filter((e) => e.channel === 'keep').map((e) => e.data),
        ['k1'],
      );
      const lost = got
        .filter((e) => e.channel === 'lose' && e.event !== 'reset')
        .map((e) => e.data);
      assert.deepEqual(lost, ['l16', 'l17', 'l18', 'l19', 'l20'], 'the 5 the history holds');
    } finally {
      await t.close();
    }
  });
}

describe('several channels in one stream, memory broker', () => {
  routeTests((partial = {}) => startServer(partial));

  let t: TestServer;
  before(async () => {
    t = await startServer({ limits: { maxChannelsPerStream: 4 } });
  });
  after(() => t.close());

  test('no channel, too many, a bad name: 400 naming the parameter; a duplicate counts once', async () => {
    for (const path of [
      '/sse/streams',
      '/sse/streams?channel=a&channel=b&channel=c&channel=d&channel=e',
      '/sse/streams?channel=ok&channel=bad%20name',
    ]) {
      const res = await fetch(`${t.base}${path}`);
      assert.equal(res.status, 400, path);
      const body = (await res.json()) as { error: string; parameter?: string };
      assert.equal(body.error, 'bad_request');
      assert.equal(body.parameter, 'channel');
    }
    const dup = new Subscriber(
      `${t.base}/sse/streams?channel=a&channel=b&channel=a&channel=c&channel=d`,
    );
    await dup.opened;
    assert.equal(dup.status, 200, '4 distinct channels');
    dup.close();
  });

  test('one connection in sse_connections_active{route="/sse/streams"}; HEAD; the envelope', async () => {
    const s = new Subscriber(streamUrl(t.base, ['x', 'y', 'z']));
    await s.opened;
    assert.equal(openStreams(t.server), 1);
    const metrics = await (await fetch(`${t.base}/metrics`)).text();
    assert.match(metrics, /sse_connections_active\{route="\/sse\/streams"\} 1/);
    await publish(t.base, 'y', { event: 'created', data: { id: 7 } });
    await s.waitFor(1);
    const e = s.events[0]!;
    assert.equal(e.event, 'created', 'the publisher event name unchanged');
    assert.deepEqual(JSON.parse(e.data), { channel: 'y', data: '{"id":7}' });
    const positions = decodeCursor(e.id!);
    assert.ok(positions !== null && positions.size === 3, 'the cursor holds every channel');
    s.close();
    const head = await fetch(streamUrl(t.base, ['x']), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'text/event-stream');
  });

  test('a channel that started live resumes after where it started, not from its older history', async () => {
    await publish(
      t.base,
      'old-history',
      Array.from({ length: 3 }, (_, i) => ({ data: `old${i}` })),
    );
    const s = new Subscriber(streamUrl(t.base, ['old-history', 'busy']));
    await s.opened;
    await publish(t.base, 'busy', { data: 'b0' });
    await s.waitFor(1);
    s.close();
    await publish(t.base, 'old-history', { data: 'new0' });
    const r = new Subscriber(streamUrl(t.base, ['old-history', 'busy']), {
      'Last-Event-ID': s.events.at(-1)!.id!,
    });
    await r.waitFor(1);
    await publish(t.base, 'busy', { data: 'b1' });
    await r.waitFor(2);
    r.close();
    assert.deepEqual(
      r.events.map(opened).map((e) => e.data),
      ['new0', 'b1'],
    );
  });

  test('channels added to or dropped from the URL: new ones start live, dropped ones are forgotten', async () => {
    const s = new Subscriber(streamUrl(t.base, ['p', 'q']));
    await s.opened;
    await publish(t.base, 'p', { data: 'p0' });
    await publish(t.base, 'q', { data: 'q0' });
    await s.waitFor(2);
    s.close();
    const cursor = s.events.at(-1)!.id!;
    await publish(t.base, 'p', { data: 'p1' });
    await publish(t.base, 'q', { data: 'q1' });
    await publish(t.base, 'r', { data: 'r-before' });
    const r = new Subscriber(streamUrl(t.base, ['p', 'r']), { 'Last-Event-ID': cursor });
    await r.waitFor(1);
    await publish(t.base, 'r', { data: 'r-live' });
    await r.waitFor(2);
    r.close();
    assert.deepEqual(
      r.events.map(opened).map((e) => [e.channel, e.data]),
      [
        ['p', 'p1'],
        ['r', 'r-live'],
      ],
    );
  });

  test('a malformed, oversized or foreign-version cursor: one reset (malformed_id), then every channel from its history', async () => {
    const held = ['held-1', 'held-2'];
    await publish(t.base, 'm1', { data: 'held-1' });
    await publish(t.base, 'm2', { data: 'held-2' });
    for (const cursor of [
      'junk',
      `c1${'A'.repeat(MAX_CURSOR_CHARS)}`,
      'c9AAAA',
      '1795862747381-0',
    ]) {
      const s = new Subscriber(streamUrl(t.base, ['m1', 'm2']), { 'Last-Event-ID': cursor });
      await s.waitFor(held.length + 1);
      s.close();
      const got = s.events.map(opened);
      assert.equal(got[0]!.event, 'reset');
      assert.equal(got[0]!.channel, null);
      assert.equal((JSON.parse(got[0]!.data) as { reason: string }).reason, 'malformed_id');
      assert.equal(got.filter((e) => e.event === 'reset').length, 1);
      assert.deepEqual(
        got.slice(1).map((e) => e.data),
        held,
      );
      // The reset's id resumes exactly: nothing again, no second reset.
      const again = new Subscriber(streamUrl(t.base, ['m1', 'm2']), {
        'Last-Event-ID': got.at(-1)!.id,
      });
      await again.opened;
      await publish(t.base, 'm1', { data: `after-${cursor.length}` });
      await again.waitFor(1);
      again.close();
      assert.deepEqual(
        again.events.map(opened).map((e) => e.data),
        [`after-${cursor.length}`],
      );
      held.push(`after-${cursor.length}`);
    }
  });
});

describe('several channels in one stream, Redis broker', { skip: redisSkip ?? false }, () => {
  let redis: TestRedis;
  let prefixes = 0;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());
  const onRedis = (prefix: string, partial: Record<string, unknown> = {}) =>
    startServer({ broker: { type: 'redis', url: redis.url, keyPrefix: prefix }, ...partial });

  routeTests((partial = {}) => onRedis(`ms${prefixes++}:`, partial));

  test('across two replicas on one Redis: subscribe on one, resume on the other', async () => {
    const prefix = `ms${prefixes++}:`;
    const a = await onRedis(prefix);
    const b = await onRedis(prefix);
    try {
      const channels = Array.from({ length: 10 }, (_, i) => `two.${i}`);
      await cutAndResume(a.base, b.base, channels);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

test('no leak: streams closed during their replay leave their channels', async () => {
  const t = await startServer({});
  try {
    await publish(
      t.base,
      'big',
      Array.from({ length: 500 }, (_, i) => ({ data: `${i}:${'x'.repeat(500)}` })),
    );
    const subs = Array.from(
      { length: 20 },
      () => new Subscriber(streamUrl(t.base, ['big', 'small']), { 'Last-Event-ID': 'junk' }),
    );
    await Promise.all(subs.map((s) => s.opened));
    for (const s of subs) s.close();
    await eventually(() => openStreams(t.server) === 0, 10_000, 'streams closed');
    assert.equal(subscribers(t.server, 'big'), 0);
    assert.equal(subscribers(t.server, 'small'), 0);
  } finally {
    await t.close();
  }
});
