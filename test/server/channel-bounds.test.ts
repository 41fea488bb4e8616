// Channel bounds and the 0-0 seam:
// - a channel with no subscribers and no history holds no limits.maxChannels slot: 200 channels
//   subscribed and closed one after another fit in maxChannels 100, and a new channel publishes
//   right after (memory broker here; the Redis broker in test/reliability/redis-promise.test.ts);
// - after a reset whose resumeAfter is 0-0 (a Last-Event-ID on an empty channel), resuming from
//   0-0 continues with the channel's events and no second reset (both brokers).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { visitChannelsInTurn } from '../helpers/channel-visits.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { publish, Subscriber, startServer } from '../helpers/server.ts';

const skip = missingRedis();

describe('limits.maxChannels counts channels that hold something', () => {
  test('memory broker, maxChannels 100: 200 channels subscribed and closed one after another all open; a new channel publishes right after', async (ctx) => {
    const t = await startServer({ limits: { maxChannels: 100 } });
    try {
      const refused = await visitChannelsInTurn(t.base, 'visit-', 200);
      const after = await publish(t.base, 'fresh-after-visits', { data: 'x' });
      ctx.diagnostic(
        `${200 - refused.length} of 200 opened; first refused: ${refused.slice(0, 3).join(', ')}; publish to a new channel after: ${after.status} ${JSON.stringify(after.body)}`,
      );
      assert.equal(refused.length, 0, `${refused.length} of 200 refused, from ${refused[0]}`);
      assert.equal(after.status, 202, JSON.stringify(after.body));
    } finally {
      await t.close();
    }
  });
});

describe('resuming from 0-0 after a reset to 0-0', () => {
  let redis: TestRedis | null = null;
  before(async () => {
    if (skip === null) redis = await startRedis();
  });
  after(() => redis?.stop());

  for (const broker of ['memory', 'redis'] as const) {
    test(`${broker} broker: Last-Event-ID 5-0 on an empty channel resets to 0-0; resuming from 0-0 then gets the next event and no second reset`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const t = await startServer(
        broker === 'redis'
          ? { broker: { type: 'redis', url: redis!.url, keyPrefix: `zero-${process.pid}:` } }
          : {},
      );
      const subs: Subscriber[] = [];
      try {
        const first = new Subscriber(`${t.base}/sse/channels/from-zero`, {
          'Last-Event-ID': '5-0',
        });
        subs.push(first);
        await first.waitFor(1);
        first.close();
        const reset = first.events[0]!;
        assert.equal(reset.event, 'reset');
        assert.equal(reset.id, '0-0');
        assert.equal(JSON.parse(reset.data).resumeAfter, '0-0');

        const published = await publish(t.base, 'from-zero', { data: 'after the reset' });
        assert.equal(published.status, 202);
        const second = new Subscriber(`${t.base}/sse/channels/from-zero`, {
          'Last-Event-ID': '0-0',
        });
        subs.push(second);
        await second.waitFor(1);
        const live = await publish(t.base, 'from-zero', { data: 'live' });
        await second.waitFor(2);
        ctx.diagnostic(
          `first: ${JSON.stringify(reset)}; resumed from 0-0: ${JSON.stringify(second.events)}`,
        );
        assert.deepEqual(
          second.events.map((e) => [e.event, e.id, e.data]),
          [
            [undefined, published.body.ids![0], 'after the reset'],
            [undefined, live.body.ids![0], 'live'],
          ],
        );
      } finally {
        for (const s of subs) s.close();
        await t.close();
      }
    });
  }
});
