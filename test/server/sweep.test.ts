// The fan-out sweep (sse/channel.ts): live subscribers visited in slices while events keep
// arriving. Every subscriber gets every event once and in order, each visit in one write; a
// subscriber the round has not reached yet takes the events that came meanwhile in the same write;
// a lone event on an idle channel goes to everyone in the first step; a slow consumer cut in the
// middle of a round stops nobody else; publishes are answered only once everyone has the event.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { FramedEvent } from '../../services/server/src/broker/broker.ts';
import { IdGenerator } from '../../services/server/src/broker/event-id.ts';
import { frameEvent } from '../../services/server/src/broker/framed-event.ts';
import { Channel } from '../../services/server/src/sse/channel.ts';
import { Subscription } from '../../services/server/src/sse/subscription.ts';
import { FakeStream } from '../helpers/core-fakes.ts';

/** A stream that also counts its writes. */
class CountingStream extends FakeStream {
  writes = 0;
  /** Cut as a slow consumer at its next write (send answers false, as a real bound does). */
  cutAtNextWrite = false;

  override send(payload: Buffer): boolean {
    if (this.ended) return false;
    if (this.cutAtNextWrite) {
      this.destroy('slow_consumer');
      return false;
    }
    this.writes++;
    return super.send(payload);
  }
}

function liveChannel(n: number): { ch: Channel; streams: CountingStream[] } {
  const ch = new Channel('c', () => {});
  const streams: CountingStream[] = [];
  for (let i = 0; i < n; i++) {
    const s = new CountingStream();
    const sub = new Subscription(s.conn, ch);
    ch.add(sub);
    s.sendHead({}, []);
    ch.promoteIfCaughtUp(sub);
    streams.push(s);
  }
  assert.equal(ch.live.length, n);
  return { ch, streams };
}

function eventSource(): () => FramedEvent {
  const ids = new IdGenerator(() => 1000);
  let n = 0;
  return () => frameEvent({ data: `e${n++}` }, ids.next());
}

/** Sweeps until the channel has nothing left; returns the steps taken. */
function sweepAll(ch: Channel, budget: number): number {
  let steps = 0;
  while (!ch.sweep(budget).done) {
    steps++;
    assert.ok(steps < 100_000, 'the sweep never ends');
  }
  return steps + 1;
}

describe('fan-out sweep', () => {
  test('a lone event on an idle channel reaches every subscriber in the first step', () => {
    const { ch, streams } = liveChannel(50);
    const next = eventSource();
    const e = next();
    ch.receive([e]);
    const step = ch.sweep(1000);
    assert.equal(step.done, true);
    assert.equal(step.events, 50);
    for (const s of streams) assert.deepEqual(s.ids(), [e.id]);
    assert.equal(ch.flushed, e, 'the publish may answer at once');
    assert.equal(ch.flushedTo, 50);
  });

  test('events arriving mid-round: the unvisited take them in the same write, the visited in the next round', () => {
    const { ch, streams } = liveChannel(10);
    const next = eventSource();
    const a = next();
    ch.receive([a]);
    ch.sweep(4); // subscribers 0..3 have a
    const b = next();
    const c = next();
    ch.receive([b, c]);
    assert.notEqual(ch.flushed, c, 'not everyone has c: its publish must wait');
    sweepAll(ch, 4);
    for (const [i, s] of streams.entries()) {
      assert.deepEqual(s.ids(), [a.id, b.id, c.id], `subscriber ${i}`);
      assert.equal(s.writes, i < 4 ? 2 : 1, `subscriber ${i}: writes`);
    }
    assert.equal(ch.flushed, c);
    assert.equal(ch.busy, false);
  });

  test('a publish may answer as soon as every subscriber has its event, before the round ends', () => {
    const { ch } = liveChannel(10);
    const next = eventSource();
    const a = next();
    ch.receive([a]);
    ch.sweep(4); // 0..3 have a
    const b = next();
    ch.receive([b]);
    ch.sweep(4); // 4..7 have a and b
    ch.sweep(4); // 8, 9 have a and b: the round ends; 0..3 still lack b
    assert.equal(ch.flushed, a);
    const step = ch.sweep(4); // the next round: 0..3 get b; 4..9 are not visited yet
    assert.equal(step.done, false, 'the round is not over');
    assert.equal(ch.flushed, b, 'everyone has b');
    assert.equal(ch.flushedTo, 10);
  });

  test('a slow consumer cut in the middle of a round stops nobody else', () => {
    const { ch, streams } = liveChannel(20);
    const next = eventSource();
    streams[7]!.cutAtNextWrite = true;
    const sent = [next(), next()];
    ch.receive([sent[0]!]);
    ch.sweep(5);
    ch.receive([sent[1]!]);
    sweepAll(ch, 5);
    assert.equal(streams[7]!.destroyedFor, 'slow_consumer');
    assert.equal(ch.live.length, 19);
    for (const [i, s] of streams.entries()) {
      if (i !== 7)
        assert.deepEqual(
          s.ids(),
          sent.map((e) => e.id),
          `subscriber ${i}`,
        );
    }
  });

  test('property: any interleaving of events, slices, leaves and joins gives every subscriber its events once, in order', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('events' as const), n: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('sweep' as const), budget: fc.integer({ min: 1, max: 12 }) }),
      fc.record({ kind: fc.constant('leave' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('join' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 25 }), fc.array(op, { maxLength: 60 }), (n, ops) => {
        const { ch, streams } = liveChannel(n);
        const next = eventSource();
        const received: string[] = [];
        /** Where each stream joined in `received` (it must get everything after). */
        const joinedAt = new Map<CountingStream, number>(streams.map((s) => [s, 0]));
        for (const o of ops) {
          if (o.kind === 'events') {
            const events = Array.from({ length: o.n }, next);
            ch.receive(events);
            for (const e of events) received.push(e.id);
          } else if (o.kind === 'sweep') ch.sweep(o.budget);
          else if (o.kind === 'leave') {
            const open = [...joinedAt.keys()].filter((s) => !s.ended);
            if (open.length > 0) open[o.at % open.length]!.close();
          } else {
            // A new subscriber catches up between sweeps (as the hub's seam does): it is live from the
            // events received so far on, once the fresh ones were offered.
            sweepAll(ch, 1000);
            const s = new CountingStream();
            const sub = new Subscription(s.conn, ch);
            ch.add(sub);
            s.sendHead({}, []);
            sub.cursor = ch.position;
            ch.promoteIfCaughtUp(sub);
            joinedAt.set(s, received.length);
          }
        }
        sweepAll(ch, 7);
        for (const [s, from] of joinedAt) {
          if (s.ended) continue;
          assert.deepEqual(s.ids(), received.slice(from));
        }
        assert.equal(ch.busy, false);
      }),
      { numRuns: 300 },
    );
  });
});
