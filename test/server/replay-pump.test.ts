// The replay pump on its own: long replays go out page by page, a page waits for 'drain' only
// when its write went past the high-water mark, and every stream gets its whole replay.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { FramedEvent } from '../../services/server/src/broker/broker.ts';
import { frameEvent } from '../../services/server/src/broker/framed-event.ts';
import type { SseConnection } from '../../services/server/src/sse/connection.ts';
import { nextPage, ReplayPump } from '../../services/server/src/sse/replay-pump.ts';
import { Subscription } from '../../services/server/src/sse/subscription.ts';

/** A connection whose transport reports `needsDrain` as told and records what was written. */
function fakeConnection(needsDrain: () => boolean) {
  const socket = new EventEmitter();
  const written: Buffer[] = [];
  const conn = {
    ended: false,
    opened: true,
    maxBufferedBytes: 1024 * 1024,
    lastWriteAt: 0,
    sendParts(parts: readonly Buffer[]) {
      written.push(...parts);
      return true;
    },
    transport: { needsDrain, drainSource: () => socket, pending: () => 100 },
  };
  return { conn: conn as unknown as SseConnection, socket, written };
}

function events(n: number, bytes: number): FramedEvent[] {
  return Array.from({ length: n }, (_, i) =>
    frameEvent({ data: 'x'.repeat(bytes) }, { ms: 1000 + i, seq: 0 }),
  );
}

function pumped(conn: SseConnection, backlog: FramedEvent[]): Subscription {
  const sub = new Subscription(conn, { name: 'c', leave() {} });
  sub.backlog = backlog;
  return sub;
}

const tick = () => new Promise((r) => setImmediate(r));

test('nextPage takes at least one event, then up to the byte bound', () => {
  const list = events(10, 100);
  const size = list[0]!.payload.length;
  assert.equal(nextPage(list, 0, size * 3).next, 3);
  assert.equal(nextPage(list, 8, size * 3).next, 10);
  assert.equal(nextPage(list, 0, 1).next, 1, 'an event larger than the bound still goes');
});

test('a stream whose writes stay below the high-water mark gets its whole replay without a drain', async () => {
  const { conn, written } = fakeConnection(() => false);
  const backlog = events(200, 1000); // ~200 KB: several 64 KiB pages
  const done: unknown[] = [];
  const pump = new ReplayPump({ written: () => {}, done: (s) => done.push(s) });
  const sub = pumped(conn, backlog);
  pump.add(sub);
  for (let i = 0; i < 50 && done.length === 0; i++) await tick();
  assert.equal(done.length, 1);
  assert.equal(written.length, 200);
  assert.equal(sub.backlog, null);
  assert.deepEqual(sub.cursor, backlog[199]);
});

test('a stream past its high-water mark waits for drain, then goes on', async () => {
  let full = true;
  const { conn, socket, written } = fakeConnection(() => full);
  const done: unknown[] = [];
  const pump = new ReplayPump({ written: () => {}, done: (s) => done.push(s) });
  pump.add(pumped(conn, events(200, 1000)));
  for (let i = 0; i < 10; i++) await tick();
  const afterFirstPage = written.length;
  assert.ok(afterFirstPage > 0 && afterFirstPage < 200, `one page, got ${afterFirstPage}`);
  full = false;
  socket.emit('drain');
  for (let i = 0; i < 50 && done.length === 0; i++) await tick();
  assert.equal(done.length, 1);
  assert.equal(written.length, 200);
});

test('many streams take turns: each gets its replay in order', async () => {
  const streams = Array.from({ length: 50 }, () => fakeConnection(() => false));
  const backlog = events(300, 500);
  const done: unknown[] = [];
  const pump = new ReplayPump({ written: () => {}, done: (s) => done.push(s) });
  for (const s of streams) pump.add(pumped(s.conn, backlog));
  for (let i = 0; i < 500 && done.length < 50; i++) await tick();
  assert.equal(done.length, 50);
  for (const s of streams)
    assert.deepEqual(
      s.written,
      backlog.map((e) => e.payload),
    );
});
