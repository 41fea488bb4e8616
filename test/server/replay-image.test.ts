// Long replays' shared images (sse/replay-image.ts): built once per replay start, shared by the
// streams replaying the same events, paged as slices with the same bytes as event by event,
// bounded, and let go by every stream, whether its replay was written or it closed half way.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FramedEvent } from '../../services/server/src/broker/broker.ts';
import { frameEvent } from '../../services/server/src/broker/framed-event.ts';
import { imagePage, ReplayImages } from '../../services/server/src/sse/replay-image.ts';
import { nextPage } from '../../services/server/src/sse/replay-pump.ts';
import { byId } from '../helpers/delivery.ts';
import {
  eventually,
  publish,
  Subscriber,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

function events(n: number, bytes: number, from = 0): FramedEvent[] {
  return Array.from({ length: n }, (_, i) =>
    frameEvent({ data: `${from + i}:${'x'.repeat(bytes)}` }, { ms: 1000 + from + i, seq: 0 }),
  );
}

const bytesOf = (list: readonly FramedEvent[]) => Buffer.concat(list.map((e) => e.payload));

describe('replay images', () => {
  test('built once, shared by the same events, covering their common prefix', () => {
    const images = new ReplayImages(10 * 1024 * 1024);
    const list = events(100, 500);
    const a = images.acquire(list)!;
    assert.equal(a.covers, 100);
    assert.deepEqual(a.image.bytes, bytesOf(list));
    const b = images.acquire(list.slice())!;
    assert.equal(b.image, a.image, 'the same events share the image');
    assert.equal(images.built, 1);
    // The same start and one more event (published meanwhile): the image covers the first 100.
    const longer = [...list, ...events(1, 500, 100)];
    const c = images.acquire(longer)!;
    assert.equal(c.image, a.image);
    assert.equal(c.covers, 100);
    // Another start: another image.
    const d = images.acquire(list.slice(1))!;
    assert.notEqual(d.image, a.image);
    assert.equal(images.built, 2);
    assert.equal(images.heldBytes, a.image.bytes.length + d.image.bytes.length);
    for (const hold of [a, b, c]) images.release(hold.image);
    images.release(a.image); // one release too many changes nothing
    assert.equal(images.heldBytes, d.image.bytes.length);
    images.release(d.image);
    assert.equal(images.heldBytes, 0);
    assert.equal(images.size, 0);
  });

  test('bounded: past the budget a replay gets no image (it goes out event by event)', () => {
    const list = events(10, 1000);
    const images = new ReplayImages(bytesOf(list).length + 100);
    assert.ok(images.acquire(list) !== null);
    assert.equal(images.acquire(list.slice(1)), null, 'over the budget');
    assert.ok(images.acquire(list) !== null, 'sharing costs nothing');
    assert.equal(images.acquire([]), null);
  });

  test('pages are one slice each, at most the bound (one event at least), the same bytes in all', () => {
    const list = events(300, 700);
    const hold = new ReplayImages(1 << 30).acquire(list)!;
    for (const bound of [1, 700, 5000, 64 * 1024]) {
      const pages: Buffer[] = [];
      let from = 0;
      while (from < list.length) {
        const page = nextPage(list, from, bound, hold);
        assert.equal(page.parts.length, 1);
        const plain = nextPage(list, from, bound);
        assert.equal(page.next, plain.next, 'the same events as event by event');
        assert.deepEqual(page.parts[0], Buffer.concat(plain.parts));
        assert.ok(page.bytes <= Math.max(bound, list[from]!.payload.length));
        pages.push(page.parts[0]!);
        from = page.next;
      }
      assert.deepEqual(Buffer.concat(pages), bytesOf(list), `bound ${bound}`);
    }
    // Past what the image covers the page is event by event.
    const longer = [...list, ...events(3, 700, 300)];
    const partial = { ...hold, covers: 300 };
    assert.equal(imagePage(partial, 299, 1 << 20).next, 300);
    assert.equal(nextPage(longer, 300, 1 << 20, partial).parts.length, 3);
  });
});

describe('replay images on a server', () => {
  let t: TestServer;
  let ids: string[];
  const N = 200;
  before(async () => {
    t = await startServer();
    ids = [];
    // 200 events of ~2 KB: ~400 KB of replay, several pages.
    for (let i = 0; i < N; i += 20) {
      const batch = Array.from({ length: 20 }, (_, k) => ({
        data: `${i + k}:${'y'.repeat(2000)}`,
      }));
      const r = await publish(t.base, 'img', batch);
      assert.equal(r.body.ids?.length, 20, JSON.stringify(r.body));
      ids.push(...r.body.ids!);
    }
  });
  after(() => t.close());

  test('40 resumes at once get every event after their id, in order; nothing held after', async () => {
    const subs = Array.from(
      { length: 40 },
      () => new Subscriber(`${t.base}/sse/channels/img`, { 'Last-Event-ID': ids[0]! }),
    );
    try {
      await Promise.all(subs.map((s) => s.waitFor(N - 1, 20_000)));
      for (const s of subs) {
        assert.deepEqual(
          s.events.map((e) => e.id),
          ids.slice(1),
        );
        assert.ok(s.events.every((e, i) => e.data.startsWith(`${i + 1}:`)));
      }
      assert.ok(t.server.hub.images.built >= 1, 'the replays were written from an image');
      await eventually(() => t.server.hub.images.heldBytes === 0, 5000, 'images let go');
    } finally {
      for (const s of subs) s.close();
    }
  });

  test('resumes from an image while bursts are published: every event once, in order', async () => {
    const subs = Array.from(
      { length: 30 },
      () => new Subscriber(`${t.base}/sse/channels/img`, { 'Last-Event-ID': ids[0]! }),
    );
    try {
      // Ten bursts of 20, four in flight at a time, while the 30 replays are being written.
      const fresh: string[][] = [];
      for (let b = 0; b < 10; b += 4) {
        const bursts = await Promise.all(
          Array.from({ length: Math.min(4, 10 - b) }, (_, k) =>
            publish(
              t.base,
              'img',
              Array.from({ length: 20 }, (_, j) => ({ data: `burst ${b + k}.${j}` })),
            ),
          ),
        );
        for (const r of bursts) fresh.push(r.body.ids!);
      }
      const published = [...ids, ...fresh.flat()].sort(byId);
      const want = published.slice(1);
      await Promise.all(subs.map((s) => s.waitFor(want.length, 20_000)));
      for (const s of subs) {
        assert.deepEqual(
          s.events.map((e) => e.id),
          want,
        );
      }
      await eventually(() => t.server.hub.images.heldBytes === 0, 5000, 'images let go');
      ids = published;
    } finally {
      for (const s of subs) s.close();
    }
  });

  test('streams that never read hold their image until they close, then let go', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const s = net.connect({ port: t.port, host: '127.0.0.1' });
        s.pause();
        s.on('error', () => {});
        s.setNoDelay(true);
        await new Promise((r) => s.once('connect', r));
        // A small receive buffer keeps most of the replay in the server.
        s.write(`GET /sse/channels/img HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ${ids[10]}\r\n\r\n`);
        return s;
      }),
    );
    try {
      await eventually(
        () => t.server.hub.images.heldBytes > 0,
        5000,
        'stuck replays hold their image',
      );
    } finally {
      for (const s of sockets) s.destroy();
    }
    await eventually(() => t.server.hub.images.heldBytes === 0, 10_000, 'closed streams let go');
    assert.equal(t.server.hub.images.size, 0);
  });
});
