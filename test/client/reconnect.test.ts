// Reconnection policy: reconnection time, retry: updates, capped exponential backoff with jitter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ReconnectPolicy } from '../../services/client/src/reconnect.ts';

test('after a stream that opened, the delay is exactly the reconnection time', () => {
  const p = new ReconnectPolicy({ retryMs: 3000, maxBackoffMs: 30_000, random: () => 0.99 });
  p.opened();
  assert.equal(p.nextDelay(false), 3000);
  p.setRetry(250);
  assert.equal(p.nextDelay(false), 250);
});

test('consecutive failures back off exponentially up to the cap, never below the reconnection time', () => {
  const top = new ReconnectPolicy({ retryMs: 1000, maxBackoffMs: 10_000, random: () => 1 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => top.nextDelay(true)),
    [2000, 4000, 8000, 10_000, 10_000],
  );
  const bottom = new ReconnectPolicy({ retryMs: 1000, maxBackoffMs: 10_000, random: () => 0 });
  assert.deepEqual(
    [1, 2, 3].map(() => bottom.nextDelay(true)),
    [1000, 1000, 1000],
  );
  top.opened();
  assert.equal(top.failures, 0);
  assert.equal(top.nextDelay(true), 2000);
});

test('a reconnection time above the cap wins over the cap', () => {
  const p = new ReconnectPolicy({ retryMs: 60_000, maxBackoffMs: 30_000, random: () => 1 });
  assert.equal(p.nextDelay(true), 60_000);
});

test('a zero reconnection time still backs off after failures', () => {
  const p = new ReconnectPolicy({ retryMs: 0, maxBackoffMs: 1000, random: () => 1 });
  assert.equal(p.nextDelay(false), 0);
  assert.equal(p.nextDelay(true), 200);
});

test('huge retry values are clamped to what setTimeout accepts', () => {
  const p = new ReconnectPolicy();
  p.setRetry(1e30);
  assert.equal(p.nextDelay(false), 2_147_483_647);
});

test('property: delays stay within [reconnection time, max(reconnection time, cap)]', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 100_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.array(fc.boolean(), { maxLength: 40 }),
      fc.double({ min: 0, max: 0.999_999, noNaN: true }),
      (retryMs, maxBackoffMs, outcomes, r) => {
        const p = new ReconnectPolicy({ retryMs, maxBackoffMs, random: () => r });
        for (const failed of outcomes) {
          const d = p.nextDelay(failed);
          assert.ok(d >= retryMs, `${d} >= ${retryMs}`);
          assert.ok(d <= Math.max(retryMs, maxBackoffMs), `${d} <= cap`);
          if (!failed) p.opened();
        }
      },
    ),
  );
});
