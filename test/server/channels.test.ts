// Channels: publish API, fan-out order, Last-Event-ID replay, reset, auth, limits, slow consumers.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { compareIds, parseEventId } from '../../services/server/src/broker/event-id.ts';
import { EXAMPLE_HEADERS } from '../helpers/example.ts';
import { fullGc } from '../helpers/memory.ts';
import {
  channelsHeld,
  eventually,
  openStreams,
  publish,
  rawExchange,
  Subscriber,
  splitResponse,
  startServer,
  subscribers,
  type TestServer,
} from '../helpers/server.ts';

const ids = (s: Subscriber) => s.events.map((e) => e.id);
const byId = (a: string, b: string) => compareIds(parseEventId(a)!, parseEventId(b)!);

describe('publish and fan-out', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('a subscription opens with the SSE headers and a retry line', async () => {
    const raw = await rawExchange(
      t.port,
      'GET /sse/channels/hello HTTP/1.1\r\nHost: x\r\n\r\n',
      (s) => s.includes('retry: 2000\n\n'),
    );
    const { status, headers } = splitResponse(raw);
    assert.equal(status, 'HTTP/1.1 200 OK');
    for (const h of EXAMPLE_HEADERS) {
      assert.ok(headers.includes(h), h);
    }
  });

  test('many subscribers all receive every event, in order, with increasing ids', async () => {
    const subs = Array.from({ length: 40 }, () => new Subscriber(`${t.base}/sse/channels/many`));
    await Promise.all(subs.map((s) => s.opened));
    const published: string[] = [];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        publish(t.base, 'many', [
          { data: { i, part: 0 } },
          { event: 'tick', data: `line ${i}\nsecond line` },
        ]),
      ),
    );
    for (const r of results) {
      assert.equal(r.status, 202);
      assert.equal(r.body.subscribers, 40);
      published.push(...r.body.ids!);
    }
    published.sort(byId);
    for (const id of published) assert.match(id, /^\d+-\d+$/);
    for (let i = 1; i < published.length; i++)
      assert.ok(byId(published[i]!, published[i - 1]!) > 0);
    await Promise.all(subs.map((s) => s.waitFor(40)));
    for (const s of subs) {
      assert.deepEqual(ids(s), published);
      assert.equal(s.retry, 2000);
      const tick = s.events.find((e) => e.event === 'tick')!;
      assert.match(tick.data, /^line \d+\nsecond line$/);
      assert.equal(s.events.find((e) => e.event === undefined)!.data.startsWith('{"i":'), true);
      s.close();
    }
  });

  test('data of any string comes back equal (CR and CRLF as LF); JSON values are serialized', async () => {
    const sub = new Subscriber(`${t.base}/sse/channels/strings`);
    await sub.opened;
    const samples = [
      '',
      'plain',
      'a\nb',
      'a\r\nb',
      'a\rb',
      'nul\0byte',
      ' leading space',
      'data: x',
      'é😀',
    ];
    const r = await publish(t.base, 'strings', [
      ...samples.map((data) => ({ data })),
      { data: { nested: [1, null] } },
      { data: 42 },
      { data: null },
    ]);
    assert.equal(r.status, 202);
    await sub.waitFor(samples.length + 3);
    assert.deepEqual(
      sub.events.map((e) => e.data),
      [...samples.map((s) => s.replace(/\r\n|\r/g, '\n')), '{"nested":[1,null]}', '42', 'null'],
    );
    sub.close();
  });

  test('a publish to a channel nobody listens to still answers 202 with 0 subscribers', async () => {
    const r = await publish(t.base, 'empty.channel:1', { data: 'x' });
    assert.equal(r.status, 202);
    assert.equal(r.body.subscribers, 0);
    assert.equal(r.body.ids!.length, 1);
  });

  test('after the last subscriber left, a publish answers 0 subscribers', async () => {
    const sub = new Subscriber(`${t.base}/sse/channels/left`);
    await sub.opened;
    const first = await publish(t.base, 'left', { data: 'seen' });
    assert.equal(first.body.subscribers, 1);
    await sub.waitFor(1);
    sub.close();
    await eventually(() => subscribers(t.server, 'left') === 0, 5000, 'the subscriber gone');
    const after = await publish(t.base, 'left', { data: 'unseen' });
    assert.equal(after.status, 202);
    assert.equal(after.body.subscribers, 0);
  });

  test('bad publish requests answer 400/413 JSON', async () => {
    const cases: [unknown, number, RegExp][] = [
      ['{bad json', 400, /not valid JSON/],
      ['', 400, /JSON object or an array/],
      ['"just a string"', 400, /JSON object or an array/],
      ['42', 400, /JSON object or an array/],
      [{ event: 'x' }, 400, /data is required/],
      [{ data: 'x', id: 5 }, 400, /unknown field "id"/],
      [{ data: 'x', event: 'a\nb' }, 400, /without CR, LF or NULL/],
      [{ data: 'x', event: 'a\0b' }, 400, /without CR, LF or NULL/],
      [{ data: 'x', event: 7 }, 400, /event must be a string/],
      [[], 400, /batch is empty/],
      [[{ data: 'ok' }, 'nope'], 400, /body\[1\] must be an object/],
      [{ data: 'x'.repeat(70_000) }, 413, /maxBodyBytes/],
    ];
    for (const [body, status, message] of cases) {
      const r = await publish(t.base, 'bad', body);
      assert.equal(r.status, status, JSON.stringify(body).slice(0, 60));
      assert.match(String(r.body.message), message);
      assert.ok(r.body.error);
    }
    const badName = await publish(t.base, 'no%20spaces', { data: 'x' });
    assert.equal(badName.status, 400);
    // Decoded once, like the subscribe route: a%2541 is "a%41", not "aA".
    const twice = await publish(t.base, 'a%2541', { data: 'x' });
    assert.equal(twice.status, 400);
    const subscribeTwice = await fetch(`${t.base}/sse/channels/a%2541`);
    assert.equal(subscribeTwice.status, 400);
    await subscribeTwice.body?.cancel();
    const encoded = await publish(t.base, 'a%3Ab', { data: 'x' });
    assert.equal(encoded.status, 202);
    const wrongMethod = await fetch(`${t.base}/channels/x/events`);
    assert.equal(wrongMethod.status, 405);
    assert.match(wrongMethod.headers.get('allow') ?? '', /POST/);
  });

  test('bad channel names answer 400; a malformed Last-Event-ID gets a reset, not a silent start', async () => {
    for (const path of [
      '/sse/channels/',
      '/sse/channels/a%20b',
      `/sse/channels/${'x'.repeat(129)}`,
      '/sse/channels/a/b',
    ]) {
      const res = await fetch(`${t.base}${path}`);
      assert.equal(res.status, 400, path);
      assert.equal(((await res.json()) as { parameter: string }).parameter, 'channel');
    }
    await publish(t.base, 'ok', { data: 'held' });
    const sub = new Subscriber(`${t.base}/sse/channels/ok`, { 'Last-Event-ID': 'x1' });
    await sub.waitFor(2);
    sub.close();
    assert.equal(sub.events[0]!.event, 'reset');
    assert.equal(JSON.parse(sub.events[0]!.data).reason, 'malformed_id');
    assert.equal(JSON.parse(sub.events[0]!.data).lastEventId, 'x1');
    assert.equal(sub.events[1]!.data, 'held');
  });
});

describe('transports', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ heartbeatMs: 3_600_000 });
  });
  after(() => t.close());

  test('an HTTP/1.0 subscriber gets the fan-out unchunked, through the response', async () => {
    const done = rawExchange(t.port, 'GET /sse/channels/old-http HTTP/1.0\r\n\r\n', (s) =>
      s.includes('data: second'),
    );
    await eventually(() => subscribers(t.server, 'old-http') === 1, 5000, 'subscriber');
    await publish(t.base, 'old-http', [{ data: 'first' }, { data: 'second' }]);
    const { status, headers, body } = splitResponse(await done);
    assert.equal(status, 'HTTP/1.1 200 OK');
    assert.ok(!headers.includes('Transfer-Encoding: chunked'));
    assert.match(
      body,
      /^retry: 2000\n\ndata: first\nid: \d+-\d+\n\ndata: second\nid: \d+-\d+\n\n$/,
    );
  });

  test('a pipelined subscription queued behind another response gets its events in order', async () => {
    // The second request waits for the first response on the same socket: its stream goes
    // through node's response queue, not straight to the socket.
    const done = rawExchange(
      t.port,
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /sse/channels/piped HTTP/1.1\r\nHost: x\r\n\r\n',
      (s) => s.includes('data: two'),
    );
    await eventually(() => subscribers(t.server, 'piped') === 1, 5000, 'subscriber');
    await publish(t.base, 'piped', [{ data: 'one' }, { data: 'two' }]);
    const raw = await done;
    assert.match(raw, /^HTTP\/1\.1 200 OK[\s\S]*"status":"ok"[\s\S]*HTTP\/1\.1 200 OK/);
    assert.ok(raw.indexOf('data: one') < raw.indexOf('data: two'));
  });
});

describe('Last-Event-ID replay', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ channels: { historySize: 50 } });
  });
  after(() => t.close());

  test('reconnecting subscribers see every event exactly once while publishing goes on', async () => {
    const total = 300;
    let stop = false;
    const publisher = (async () => {
      for (let i = 0; i < total && !stop; i++) {
        const r = await publish(t.base, 'replay', { data: String(i) });
        assert.equal(r.status, 202);
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const seen: number[] = [];
    let last: string | undefined;
    let rounds = 0;
    try {
      while (seen.length < total) {
        rounds++;
        const headers: Record<string, string> = last ? { 'Last-Event-ID': last } : {};
        const sub = new Subscriber(`${t.base}/sse/channels/replay`, headers);
        await sub.opened;
        if (last === undefined) {
          // The first connection may start after some events: take them from a full replay.
          sub.close();
          const first = new Subscriber(`${t.base}/sse/channels/replay?lastEventId=0`);
          await first.opened;
          await first.waitFor(Math.min(total, 5), 10_000);
          first.close();
          for (const e of first.events) {
            if (e.event === 'reset') continue;
            seen.push(Number(e.data));
            last = e.id;
          }
          continue;
        }
        await sub.waitFor(Math.min(total - seen.length, 5 + (rounds % 11)), 10_000);
        sub.close();
        for (const e of sub.events) {
          assert.notEqual(e.event, 'reset', 'history of 50 covers every reconnect here');
          seen.push(Number(e.data));
          last = e.id;
        }
      }
    } finally {
      stop = true;
      await publisher;
    }
    assert.deepEqual(
      seen.slice(0, total),
      Array.from({ length: total }, (_, i) => i),
    );
    assert.ok(rounds > 5);
  });

  test('an id older than the history gets an explicit reset, then the oldest held events', async () => {
    const r = await publish(
      t.base,
      'overflow',
      Array.from({ length: 80 }, (_, i) => ({ data: String(i) })),
    );
    const published = r.body.ids!;
    const sub = new Subscriber(`${t.base}/sse/channels/overflow`, {
      'Last-Event-ID': published[2]!,
    });
    await sub.waitFor(51);
    sub.close();
    const [reset, ...rest] = sub.events;
    assert.equal(reset!.event, 'reset');
    // The newest id dropped from the history of 50: the stream continues right after it.
    assert.equal(reset!.id, published[29]);
    assert.deepEqual(JSON.parse(reset!.data), {
      reason: 'history_exceeded',
      lastEventId: published[2],
      resumeAfter: published[29],
    });
    assert.deepEqual(ids({ events: rest } as Subscriber), published.slice(30));
  });

  test('an id newer than anything sent gets a reset and the whole history', async () => {
    await publish(t.base, 'future', [{ data: 'a' }, { data: 'b' }]);
    const ahead = `${Date.now() + 3_600_000}-0`;
    const sub = new Subscriber(`${t.base}/sse/channels/future`, { 'Last-Event-ID': ahead });
    await sub.waitFor(3);
    sub.close();
    assert.equal(sub.events[0]!.event, 'reset');
    assert.equal(JSON.parse(sub.events[0]!.data).reason, 'unknown_id');
    assert.deepEqual(
      sub.events.slice(1).map((e) => e.data),
      ['a', 'b'],
    );
  });

  test('an up-to-date id replays nothing and gets no reset', async () => {
    const r = await publish(t.base, 'current', [{ data: 'a' }, { data: 'b' }]);
    const sub = new Subscriber(`${t.base}/sse/channels/current`, {
      'Last-Event-ID': String(r.body.ids![1]),
    });
    await sub.opened;
    await publish(t.base, 'current', { data: 'c' });
    await sub.waitFor(1);
    sub.close();
    assert.deepEqual(
      sub.events.map((e) => e.data),
      ['c'],
    );
  });
});

describe('history expiry', () => {
  test('a channel with no subscribers and no history is forgotten after historyTtlMs', async () => {
    const t = await startServer({ channels: { historyTtlMs: 1000 } });
    try {
      const r = await publish(t.base, 'ephemeral', { data: 'x' });
      assert.equal(await channelsHeld(t.server), 1);
      await eventually(
        async () => (await channelsHeld(t.server)) === 0,
        10_000,
        'channel to be forgotten',
      );
      // Its id is not reused, and resuming from it is never silent: the record is gone.
      const again = await publish(t.base, 'ephemeral', { data: 'y' });
      assert.ok(byId(again.body.ids![0]!, r.body.ids![0]!) > 0);
      const sub = new Subscriber(`${t.base}/sse/channels/ephemeral`, {
        'Last-Event-ID': r.body.ids![0]!,
      });
      await sub.waitFor(2);
      sub.close();
      assert.equal(sub.events[0]!.event, 'reset');
      assert.equal(JSON.parse(sub.events[0]!.data).reason, 'unknown_id');
      assert.equal(sub.events[1]!.data, 'y');
    } finally {
      await t.close();
    }
  });
});

describe('auth', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ publish: { token: 'pub-secret' }, subscribe: { token: 'sub-secret' } });
  });
  after(() => t.close());

  test('publishing needs the bearer token', async () => {
    const none = await publish(t.base, 'a', { data: 'x' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'unauthorized');
    assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
    const wrong = await publish(t.base, 'a', { data: 'x' }, { Authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
    const ok = await publish(t.base, 'a', { data: 'x' }, { Authorization: 'Bearer pub-secret' });
    assert.equal(ok.status, 202);
  });

  test('subscribing needs the token in the header or the access_token parameter', async () => {
    const none = await fetch(`${t.base}/sse/channels/a`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: string }).error, 'unauthorized');
    const wrong = await fetch(`${t.base}/sse/channels/a?access_token=nope`);
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    for (const [path, headers] of [
      ['/sse/channels/a', { Authorization: 'Bearer sub-secret' }],
      ['/sse/channels/a?access_token=sub-secret', {}],
    ] as const) {
      const sub = new Subscriber(`${t.base}${path}`, headers);
      await sub.opened;
      assert.equal(sub.status, 200);
      sub.close();
    }
  });
});

describe('connection limits', () => {
  test('maxConnections answers 503 with Retry-After; maxConnectionsPerIp answers 429', async () => {
    const t = await startServer({ limits: { maxConnections: 2 } });
    const u = await startServer({ limits: { maxConnectionsPerIp: 1 } });
    try {
      const held = [
        new Subscriber(`${t.base}/sse/channels/x`),
        new Subscriber(`${t.base}/sse/test`),
      ];
      await Promise.all(held.map((s) => s.opened));
      const over = await fetch(`${t.base}/sse/channels/x`);
      assert.equal(over.status, 503);
      assert.ok(Number(over.headers.get('retry-after')) > 0);
      // The same code as the notice an EventSource gets for it (one table of refusals).
      assert.equal(((await over.json()) as { error: string }).error, 'max_connections');
      for (const s of held) s.close();
      await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
      const again = new Subscriber(`${t.base}/sse/channels/x`);
      await again.opened;
      assert.equal(again.status, 200);
      again.close();

      const one = new Subscriber(`${u.base}/sse/channels/y`);
      await one.opened;
      const second = await fetch(`${u.base}/sse/channels/y`);
      assert.equal(second.status, 429);
      assert.equal(((await second.json()) as { error: string }).error, 'per_ip_limit');
      one.close();
    } finally {
      await t.close();
      await u.close();
    }
  });

  test('a subscriber that never reads is cut at the buffer bound; others keep receiving; memory stays bounded', async () => {
    const t = await startServer({
      limits: { maxBufferedBytes: 256 * 1024 },
      channels: { historySize: 10 },
    });
    try {
      const normal = new Subscriber(`${t.base}/sse/channels/firehose`);
      await normal.opened;
      // A raw subscriber that sends its request and then never reads a byte.
      const stalled = net.connect(t.port, '127.0.0.1');
      stalled.write('GET /sse/channels/firehose HTTP/1.1\r\nHost: x\r\n\r\n');
      stalled.pause();
      stalled.on('error', () => {});
      let stalledClosed = false;
      stalled.on('close', () => {
        stalledClosed = true;
      });
      await eventually(() => subscribers(t.server, 'firehose') === 2, 5000, 'two subscribers');

      const payload = 'x'.repeat(32 * 1024);
      await fullGc(200);
      const before = process.memoryUsage().arrayBuffers;
      const total = 1500; // ~48 MiB through the stalled subscriber's path
      let cutAt = -1;
      for (let i = 0; i < total; i++) {
        const r = await publish(t.base, 'firehose', { data: payload });
        assert.equal(r.status, 202);
        if (cutAt < 0 && r.body.subscribers === 1) cutAt = i;
      }
      await normal.waitFor(total, 30_000);
      await fullGc(200);
      // Buffers still referenced after a full GC: the stalled socket's queue would hold the
      // ~40 MiB the kernel did not take, were it not cut off at 256 KiB.
      const grown = process.memoryUsage().arrayBuffers - before;
      assert.ok(grown < 16 * 1024 * 1024, `buffer memory grew by ${grown} bytes`);
      stalled.resume(); // read what the kernel holds, then the server's FIN
      await eventually(() => stalledClosed, 5000, 'the stalled socket to be closed by the server');
      assert.ok(cutAt >= 0, 'the stalled subscriber was cut off');
      assert.equal(normal.events.length, total);
      const text = await (await fetch(`${t.base}/metrics`)).text();
      assert.match(text, /^sse_slow_consumer_disconnects_total 1$/m);
      normal.close();
      stalled.destroy();
    } finally {
      await t.close();
    }
  });
});

describe('bounds on channels and history', () => {
  test('limits.maxChannels: a new channel beyond it is refused with 503 on publish and subscribe', async () => {
    const t = await startServer({ limits: { maxChannels: 3 } });
    try {
      for (const name of ['c1', 'c2', 'c3']) {
        assert.equal((await publish(t.base, name, { data: 'x' })).status, 202);
      }
      const refused = await publish(t.base, 'c4', { data: 'x' });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error, 'channel_limit');
      assert.match(refused.body.message!, /limits\.maxChannels \(3\)/);
      const sub = await fetch(`${t.base}/sse/channels/c4`);
      assert.equal(sub.status, 503);
      assert.equal(((await sub.json()) as { limit: number }).limit, 3);
      assert.ok(sub.headers.get('retry-after'));
      // Known channels keep working.
      const ok = new Subscriber(`${t.base}/sse/channels/c1`);
      await ok.opened;
      assert.equal(ok.status, 200);
      assert.equal((await publish(t.base, 'c1', { data: 'y' })).status, 202);
      await ok.waitFor(1);
      ok.close();
    } finally {
      await t.close();
    }
  });

  test('channels.historyMaxBytes bounds the history in bytes; a resume past it gets a reset', async () => {
    const t = await startServer({ channels: { historyMaxBytes: 4096 } });
    try {
      const r = await publish(
        t.base,
        'bytes',
        Array.from({ length: 40 }, (_, i) => ({ data: `${i}:${'z'.repeat(1000)}` })),
      );
      const sub = new Subscriber(`${t.base}/sse/channels/bytes`, {
        'Last-Event-ID': r.body.ids![0]!,
      });
      await eventually(() => sub.events.length >= 2, 5000, 'replay');
      await new Promise((res) => setTimeout(res, 100));
      sub.close();
      assert.equal(sub.events[0]!.event, 'reset');
      assert.equal(JSON.parse(sub.events[0]!.data).reason, 'history_exceeded');
      const held = sub.events.slice(1);
      const bytes = held.reduce(
        (n, e) => n + Buffer.byteLength(`data: ${e.data}\nid: ${e.id}\n\n`),
        0,
      );
      assert.ok(bytes <= 4096, `${bytes} bytes held`);
      assert.equal(held.length, 3); // 1000-byte events, 3 fit in 4 KiB
      assert.deepEqual(
        held.map((e) => e.id),
        r.body.ids!.slice(-3),
      );
    } finally {
      await t.close();
    }
  });
});
