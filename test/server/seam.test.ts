// The history/live seam on its own (hub, channel, subscription, replay pump; no sockets): a
// subscriber resuming with Last-Event-ID gets every event after its id exactly once, in order,
// whatever the interleaving of publishes, live delivery (which may lag the record, as a Redis
// reader does), the replay's answer and the flushes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FakeStream, hubOn, ScriptedBroker, settle } from '../helpers/core-fakes.ts';

const CHANNEL = 'seam';

function setup() {
  const broker = new ScriptedBroker();
  return { broker, hub: hubOn(broker) };
}

const data = (n: number, bytes = 10) => ({ data: `${n}:${'x'.repeat(bytes)}` });

describe('the seam, scripted', () => {
  test('live events that arrive while the replay is on its way come after it, once', async () => {
    const { broker, hub } = setup();
    const early = broker.append([data(0), data(1), data(2)]);
    broker.deliver(CHANNEL);
    const stream = new FakeStream();
    const subscribing = hub.subscribe(stream.conn, CHANNEL, early[0]!.id, {});
    await settle();
    assert.equal(broker.replaysWaiting, 1);
    const late = broker.append([data(3), data(4)]);
    broker.deliver(CHANNEL);
    await settle();
    assert.deepEqual(stream.ids(), [], 'nothing before the replay');
    broker.answerReplays();
    await subscribing;
    await settle();
    assert.deepEqual(
      stream.ids(),
      [early[1]!.id, early[2]!.id, late[0]!.id, late[1]!.id],
      'replay (1, 2) then the queued live events (3, 4)',
    );
    hub.close();
  });

  test('a replay that read further than live delivery: the lagging live copies are not repeated', async () => {
    const { broker, hub } = setup();
    const all = broker.append([data(0), data(1), data(2), data(3)]);
    broker.deliver(CHANNEL, 1); // the reader has delivered only event 0
    const stream = new FakeStream();
    const subscribing = hub.subscribe(stream.conn, CHANNEL, all[0]!.id, {});
    await settle();
    broker.answerReplays(); // the record already holds 1, 2, 3
    await subscribing;
    broker.deliver(CHANNEL); // now 1, 2, 3 arrive live as well
    const more = broker.append([data(4)]);
    broker.deliver(CHANNEL);
    await settle();
    assert.deepEqual(stream.ids(), [all[1]!.id, all[2]!.id, all[3]!.id, more[0]!.id]);
    hub.close();
  });

  test('a long replay goes out page by page; live events meanwhile follow it', async () => {
    const { broker, hub } = setup();
    const history = broker.append(Array.from({ length: 100 }, (_, i) => data(i, 4000)));
    broker.deliver(CHANNEL);
    const stream = new FakeStream();
    const subscribing = hub.subscribe(stream.conn, CHANNEL, '0-0', {});
    await settle();
    broker.answerReplays();
    await subscribing;
    const firstWrite = stream.ids().length;
    assert.ok(firstWrite > 0 && firstWrite < 100, `a first page only: ${firstWrite}`);
    const live = broker.append([data(100), data(101)]);
    broker.deliver(CHANNEL);
    await settle(20);
    assert.deepEqual(
      stream.ids(),
      [...history, ...live].map((e) => e.id),
    );
    hub.close();
  });

  test('a stream that closes during its replay leaves the channel', async () => {
    const { broker, hub } = setup();
    broker.append(Array.from({ length: 50 }, (_, i) => data(i, 4000)));
    broker.deliver(CHANNEL);
    const stream = new FakeStream();
    const subscribing = hub.subscribe(stream.conn, CHANNEL, '0-0', {});
    await settle();
    broker.answerReplays();
    await subscribing;
    assert.equal(hub.subscriberCount(CHANNEL), 1);
    stream.close();
    assert.equal(hub.subscriberCount(CHANNEL), 0);
    await settle(10);
    hub.close();
  });
});

type Step =
  | { kind: 'publish'; n: number; bytes: number }
  | { kind: 'deliver'; n: number }
  | { kind: 'answer' }
  | { kind: 'tick' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('publish' as const),
    n: fc.integer({ min: 1, max: 5 }),
    bytes: fc.integer({ min: 1, max: 9000 }),
  }),
  fc.record({ kind: fc.constant('deliver' as const), n: fc.integer({ min: 1, max: 8 }) }),
  fc.constant({ kind: 'answer' as const }),
  fc.constant({ kind: 'tick' as const }),
);

test('property: any interleaving gives every event after the id, once, in order', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 30 }),
      fc.integer({ min: 0, max: 30 }),
      fc.nat(),
      fc.array(step, { maxLength: 30 }),
      async (before, lagging, pick, steps) => {
        const { broker, hub } = setup();
        const old = broker.append(Array.from({ length: before }, (_, i) => data(i, 500)));
        broker.append(Array.from({ length: lagging }, (_, i) => data(before + i, 500)));
        broker.deliver(CHANNEL, before); // the rest of the record is not delivered live yet
        const from = old.length === 0 ? '0-0' : old[pick % old.length]!.id;
        const stream = new FakeStream();
        const subscribing = hub.subscribe(stream.conn, CHANNEL, from, {});
        await settle(1);
        let n = before + lagging;
        for (const s of steps) {
          if (s.kind === 'publish') {
            broker.append(Array.from({ length: s.n }, () => data(n++, s.bytes)));
          } else if (s.kind === 'deliver') broker.deliver(CHANNEL, s.n);
          else if (s.kind === 'answer') broker.answerReplays();
          else await settle(1);
        }
        broker.answerReplays();
        await subscribing;
        broker.deliver(CHANNEL);
        await settle(60);
        const expected = broker
          .history(CHANNEL)
          .after(from === '0-0' ? { ms: 0, seq: 0 } : old[pick % old.length]!);
        hub.close();
        assert.deepEqual(
          stream.ids(),
          expected.map((e) => e.id),
        );
      },
    ),
    { numRuns: 150 },
  );
});
