// The raw receiver's shared stream (loadtest/src/fanout/shared-stream.ts): however the reads are
// cut, whenever each subscriber started, and whatever one subscriber's bytes get wrong (a changed
// byte, a missing or repeated event, CRLF lines), every subscriber hands on exactly the events its
// own reader would have read off its own bytes, in order, with the same last event id.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  SharedCursor,
  type SharedEvent,
  SharedStream,
} from '../../loadtest/src/fanout/shared-stream.ts';
import { SseReader } from '../../loadtest/src/raw/sse-reader.ts';

interface Got {
  lastId: string | undefined;
  name: string;
  data: string;
}

/** The events a plain reader reads off `bytes` (the reference every subscriber must match). */
function plain(bytes: Buffer): Got[] {
  const got: Got[] = [];
  let lastId: string | undefined;
  const reader = new SseReader((id, event, data) => {
    if (id !== undefined) lastId = id;
    got.push({ lastId, name: event ?? 'message', data: data.toString() });
  });
  reader.feed(bytes);
  return got;
}

/** A subscriber as the raw worker runs it: its own reader until it joins, then the cursor. */
function subscriber(stream: SharedStream) {
  const got: Got[] = [];
  let lastId: string | undefined;
  const reader = new SseReader((id, event, data) => {
    if (id !== undefined) lastId = id;
    got.push({ lastId, name: event ?? 'message', data: data.toString() });
  });
  const cursor = new SharedCursor(stream);
  const deliver = (e: SharedEvent) => {
    lastId = e.lastId;
    got.push({ lastId, name: e.name ?? 'message', data: e.data.toString() });
  };
  return {
    got,
    cursor,
    feed(bytes: Buffer) {
      cursor.take(bytes, reader, deliver, () => lastId);
    },
  };
}

const event = (i: number, eol = '\n') =>
  `id: 17-${i}${eol}data: {"seq":${i},"pad":"xxxx"}${eol}${eol}`;

/** A subscriber's bytes: the retry line, then events from `from` to `to` (exclusive). */
function body(from: number, to: number, alter: (i: number, text: string) => string = (_i, t) => t) {
  let text = 'retry: 1000\n\n';
  for (let i = from; i < to; i++) text += alter(i, event(i));
  return Buffer.from(text);
}

/** `bytes` cut at the given sizes (cycled). */
function reads(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/**
 * Reads whose first ends right after the subscriber's first event (where it can join), the
 * rest cut at `sizes`; subscribers after the first two wait 8 rounds (the shared stream then
 * holds their first event).
 */
function alignedReads(bodies: Buffer[], starts: number[], sizes: number[][]) {
  return bodies.map((b, k) => {
    const first = 13 + len(event(starts[k]!));
    const wait: (Buffer | null)[] = Array.from({ length: k < 2 ? 0 : 8 }, () => null);
    return [...wait, b.subarray(0, first), ...reads(b.subarray(first), sizes[k % sizes.length]!)];
  });
}

/** Feeds every subscriber its reads, round robin; null: nothing that round. */
function feedAll(stream: SharedStream, queues: (Buffer | null)[][]) {
  const subs = queues.map(() => subscriber(stream));
  for (let round = 0; queues.some((q) => round < q.length); round++) {
    queues.forEach((q, k) => {
      const read = q[round];
      if (read) subs[k]!.feed(read);
    });
  }
  return subs;
}

/** Feeds every subscriber its reads, round robin (the order sockets become readable). */
function run(stream: SharedStream, bodies: Buffer[], sizes: number[][]) {
  const subs = bodies.map(() => subscriber(stream));
  const queues = bodies.map((b, k) => reads(b, sizes[k % sizes.length]!));
  for (let round = 0; queues.some((q) => round < q.length); round++) {
    queues.forEach((q, k) => {
      if (round < q.length) subs[k]!.feed(q[round]!);
    });
  }
  return subs;
}

describe('the raw receiver: a shared stream', () => {
  test('identical streams cut differently, begun at different events: the same events, compared', () => {
    const stream = new SharedStream();
    const starts = [0, 0, 3, 10];
    const bodies = starts.map((from) => body(from, 60));
    const subs = feedAll(stream, alignedReads(bodies, starts, [[7, 300], [41], [1000], [3, 5]]));
    expectPlain(subs, bodies);
    for (const s of subs) assert.ok(s.cursor.joined, 'every one joined the shared stream');
    // The first appends what it reads first; the others compare with it.
    for (const s of subs.slice(1))
      assert.ok(s.cursor.compared > 0, 'compared with the shared bytes');
    assert.ok(stream.events.length > 40);
  });

  test('a changed byte, a missing and a repeated event on one subscriber: read on its own, exactly', () => {
    const stream = new SharedStream();
    const bodies = [
      body(0, 50),
      body(0, 50, (i, t) => (i === 20 ? t.replace('xxxx', 'xxyx') : t)),
      body(0, 50, (i, t) => (i === 30 ? '' : t)),
      body(0, 50, (i, t) => (i === 25 ? t + t : t)),
      body(0, 50, (_i, t) => t.replaceAll('\n', '\r\n')),
    ];
    const subs = run(stream, bodies, [[event(0).length], [event(0).length * 3]]);
    expectPlain(subs, bodies);
    assert.ok(subs[0]!.cursor.compared > 0);
  });

  test('the first to read past the end carries a wrong byte: the others differ from it and read alone', () => {
    const stream = new SharedStream();
    const bad = body(0, 40, (i, t) => (i === 12 ? t.replace('seq', 'seQ') : t));
    const good = body(0, 40);
    // The bad one reads first in every round, so it appends the shared bytes.
    const subs = run(stream, [bad, good, good], [[event(0).length]]);
    expectPlain(subs, [bad, good, good]);
  });

  test('past its bound the shared stream closes: everyone reads on alone, nothing lost', () => {
    const stream = new SharedStream(500);
    const bodies = [body(0, 40), body(0, 40), body(5, 40)];
    const subs = run(stream, bodies, [[event(0).length]]);
    expectPlain(subs, bodies);
    assert.equal(stream.closed, true);
  });

  test('property: any cuts, starts and one fault per subscriber give the events of a plain read', () => {
    let joins = 0;
    const fault = fc.oneof(
      fc.constant({ kind: 'none' as const, at: 0 }),
      fc.record({ kind: fc.constantFrom('byte', 'drop', 'repeat', 'crlf'), at: fc.nat(29) }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ from: fc.nat(8), fault }), { minLength: 2, maxLength: 5 }),
        fc.array(fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 4 }), {
          minLength: 1,
          maxLength: 3,
        }),
        (specs, sizes) => {
          const stream = new SharedStream();
          const bodies = specs.map(({ from, fault: f }) =>
            body(from, 30, (i, t) => {
              if (i !== f.at) return t;
              if (f.kind === 'byte') return t.replace('seq', 'sex');
              if (f.kind === 'drop') return '';
              if (f.kind === 'repeat') return t + t;
              if (f.kind === 'crlf') return t.replaceAll('\n', '\r\n');
              return t;
            }),
          );
          const subs = feedAll(
            stream,
            alignedReads(
              bodies,
              specs.map((x) => x.from),
              sizes,
            ),
          );
          expectPlain(subs, bodies);
          joins += subs.filter((x) => x.cursor.joined || x.cursor.compared > 0).length;
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(joins > 300, `the shared path was taken (${joins} subscribers joined)`);
  });
});

/** Each subscriber handed on exactly what a plain read of its own bytes gives. */
function expectPlain(subs: { got: Got[] }[], bodies: Buffer[]): void {
  for (let k = 0; k < subs.length; k++) {
    assert.deepEqual(subs[k]!.got, plain(bodies[k]!), `subscriber ${k}`);
  }
}

function len(text: string): number {
  return Buffer.byteLength(text);
}
