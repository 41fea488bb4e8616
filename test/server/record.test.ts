// The broker's record on its own: where a Last-Event-ID leaves off (every reason), the memory
// ring's count, byte and age bounds, and the idempotency store's bounds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FramedEvent } from '../../services/server/src/broker/broker.ts';
import { formatEventId } from '../../services/server/src/broker/event-id.ts';
import { frameEvent } from '../../services/server/src/broker/framed-event.ts';
import { IdempotencyStore } from '../../services/server/src/broker/idempotency-store.ts';
import { MemoryHistory } from '../../services/server/src/broker/memory-history.ts';
import {
  placeLastEventId,
  type RecordState,
  recordFloor,
} from '../../services/server/src/broker/resume.ts';

const id = (ms: number, seq = 0) => ({ ms, seq });
const text = (ms: number, seq = 0) => formatEventId(id(ms, seq));
const event = (ms: number, seq = 0, data = 'x'): FramedEvent => frameEvent({ data }, id(ms, seq));

describe('placing a Last-Event-ID in a record', () => {
  // Events 100..105 were given out; 100 and 101 were dropped: 102..105 are held.
  const trimmed: RecordState = { oldest: id(102), last: id(105), maxDeleted: id(101) };
  // Events 100..105, nothing dropped.
  const whole: RecordState = { oldest: id(100), last: id(105), maxDeleted: null };
  const empty: RecordState = { oldest: null, last: null, maxDeleted: null };

  test('an id the record continues: replay after it, no reset', () => {
    assert.deepEqual(placeLastEventId(text(103), trimmed), { after: id(103), reset: null });
    assert.deepEqual(placeLastEventId(text(101), trimmed), { after: id(101), reset: null });
    assert.deepEqual(placeLastEventId(text(105), whole), { after: id(105), reset: null });
    assert.deepEqual(placeLastEventId(` ${text(104)} `, whole), { after: id(104), reset: null });
  });

  test('history_exceeded: events after the id were dropped; resume after the floor', () => {
    const p = placeLastEventId(text(100), trimmed);
    assert.deepEqual(p.reset, { reason: 'history_exceeded', lastEventId: text(100) });
    assert.deepEqual(p.after, recordFloor(trimmed));
    assert.deepEqual(p.after, id(101));
  });

  test('unknown_id: ahead of the channel, or older than a record that lost nothing', () => {
    assert.equal(placeLastEventId(text(106), whole).reset?.reason, 'unknown_id');
    assert.equal(placeLastEventId(text(50), whole).reset?.reason, 'unknown_id');
    assert.deepEqual(placeLastEventId(text(50), whole).after, id(99, Number.MAX_SAFE_INTEGER));
    assert.equal(placeLastEventId(text(5), empty).reset?.reason, 'unknown_id');
    assert.deepEqual(placeLastEventId(text(5), empty).after, id(0));
  });

  test('malformed_id: not <ms>-<seq>; the id in the reset is cut to 64 characters', () => {
    for (const bad of ['banana', '1-2-3', '-1-0', '1e3-0', '', 'x'.repeat(300)]) {
      const p = placeLastEventId(bad, whole);
      assert.equal(p.reset?.reason, 'malformed_id', bad);
      assert.equal(p.reset?.lastEventId, bad.slice(0, 64));
      assert.deepEqual(p.after, recordFloor(whole));
    }
  });

  test('0-0 is "nothing seen": exact while nothing was dropped, history_exceeded after', () => {
    assert.deepEqual(placeLastEventId('0-0', whole), { after: id(0), reset: null });
    assert.deepEqual(placeLastEventId('0-0', empty), { after: id(0), reset: null });
    assert.equal(placeLastEventId('0-0', trimmed).reset?.reason, 'history_exceeded');
  });

  test("a reset's resumeAfter is itself placeable without a second reset", () => {
    for (const state of [trimmed, whole, empty]) {
      for (const given of [text(1), text(999), 'junk']) {
        const first = placeLastEventId(given, state);
        const again = placeLastEventId(formatEventId(first.after), state);
        assert.equal(again.reset, null, `${given} on ${JSON.stringify(state)}`);
      }
    }
  });
});

describe('the memory ring', () => {
  test('bounded by count: the oldest go first and the newest dropped id is remembered', () => {
    const h = new MemoryHistory(3, 1 << 20);
    for (let ms = 1; ms <= 5; ms++) h.push(event(ms));
    assert.equal(h.size, 3);
    assert.deepEqual(
      h.after(id(0)).map((e) => e.ms),
      [3, 4, 5],
    );
    assert.deepEqual(h.maxDeleted, id(2));
    assert.deepEqual(h.last, id(5));
    assert.equal(h.oldest?.ms, 3);
  });

  test('bounded by bytes: events go until the rest fits; one larger than the bound is not kept', () => {
    const size = event(1).payload.length;
    const h = new MemoryHistory(100, size * 2);
    for (let ms = 1; ms <= 4; ms++) h.push(event(ms));
    assert.deepEqual(
      h.after(id(0)).map((e) => e.ms),
      [3, 4],
    );
    assert.equal(h.bytes, size * 2);
    h.push(event(5, 0, 'y'.repeat(size * 3)));
    assert.deepEqual(
      h.after(id(0)).map((e) => e.ms),
      [3, 4],
    );
    assert.deepEqual(h.maxDeleted, id(5), 'the oversized event counts as dropped');
    assert.deepEqual(h.last, id(5));
  });

  test('bounded by age: expire(before) drops events whose id time is older', () => {
    const h = new MemoryHistory(100, 1 << 20);
    for (const ms of [10, 20, 30, 40]) h.push(event(ms));
    h.expire(30);
    assert.deepEqual(
      h.after(id(0)).map((e) => e.ms),
      [30, 40],
    );
    assert.deepEqual(h.maxDeleted, id(20));
    h.expire(1000);
    assert.equal(h.size, 0);
    assert.equal(h.bytes, 0);
    assert.deepEqual(h.maxDeleted, id(40));
  });

  test('after(id) finds the events after any id, held or not (binary search)', () => {
    const h = new MemoryHistory(10, 1 << 20);
    for (const [ms, seq] of [
      [5, 0],
      [5, 1],
      [7, 0],
      [9, 3],
    ] as const) {
      h.push(event(ms, seq));
    }
    const after = (ms: number, seq: number) => h.after(id(ms, seq)).map((e) => e.id);
    assert.deepEqual(after(5, 0), ['5-1', '7-0', '9-3']);
    assert.deepEqual(after(6, 0), ['7-0', '9-3']);
    assert.deepEqual(after(9, 3), []);
    assert.deepEqual(after(0, 0), ['5-0', '5-1', '7-0', '9-3']);
  });
});

describe('the memory idempotency store', () => {
  const request = (key: string, fingerprint = 'f') => ({ key, fingerprint });

  test('a key: in flight until settled, then the first answer; another body is reused', () => {
    let now = 1000;
    const store = new IdempotencyStore(
      { ttlMs: 60_000, maxKeys: 10, maxBytes: 1 << 20, leaseMs: 5000 },
      () => now,
    );
    assert.equal(store.check('c', request('k')), null);
    store.add('c', request('k'), ['1-0', '1-1']);
    assert.deepEqual(store.check('c', request('k')), { kind: 'in_flight' });
    assert.deepEqual(store.check('c', request('k', 'other')), { kind: 'key_reused' });
    assert.equal(store.check('d', request('k')), null, 'scoped to the channel');
    store.settle('c', 'k', { ids: ['1-0', '1-1'], subscribers: 3 });
    assert.deepEqual(store.check('c', request('k')), {
      kind: 'replayed',
      answer: { ids: ['1-0', '1-1'], subscribers: 3 },
    });
    now += 60_000;
    assert.equal(store.check('c', request('k')), null, 'forgotten after the TTL');
  });

  test('a record never answered counts as answered (to nobody) once its lease ran out', () => {
    let now = 0;
    const store = new IdempotencyStore(
      { ttlMs: 60_000, maxKeys: 10, maxBytes: 1 << 20, leaseMs: 5000 },
      () => now,
    );
    store.add('c', request('k'), ['1-0']);
    now = 5000;
    assert.deepEqual(store.check('c', request('k')), {
      kind: 'replayed',
      answer: { ids: ['1-0'], subscribers: 0 },
    });
  });

  test('bounded in count and bytes: the oldest keys go first', () => {
    const store = new IdempotencyStore(
      { ttlMs: 60_000, maxKeys: 3, maxBytes: 1 << 20, leaseMs: 0 },
      () => 0,
    );
    for (const k of ['a', 'b', 'c', 'd']) store.add('ch', request(k), ['1-0']);
    assert.equal(store.size, 3);
    assert.equal(store.check('ch', request('a')), null);
    assert.notEqual(store.check('ch', request('d')), null);
    const small = new IdempotencyStore(
      { ttlMs: 60_000, maxKeys: 1000, maxBytes: 2000, leaseMs: 0 },
      () => 0,
    );
    const ids = Array.from({ length: 20 }, (_, i) => `1-${i}`);
    for (let i = 0; i < 50; i++) small.add('ch', request(`key-${i}`), ids);
    assert.ok(small.size < 50 && small.size > 0, `kept ${small.size}`);
    assert.notEqual(small.check('ch', request('key-49')), null, 'the newest is kept');
    assert.equal(small.check('ch', request('key-0')), null, 'the oldest went');
  });
});
