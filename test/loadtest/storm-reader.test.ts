// The storm's raw receiver: HTTP/1.1 framing and SSE framing split anywhere (checked against
// eventsource-parser), CRLF in odd places, and a replay with a gap, a duplicate, a swap or a wrong
// byte caught by a RawSubscriber reading a crafted response off a real socket, whether it reads
// every event or compares its body with a reference replay (the same verdicts either way).
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { createParser } from 'eventsource-parser';
import fc from 'fast-check';
import { HttpFramingError, HttpResponseParser } from '../../loadtest/src/raw/http-response.ts';
import { eventStreamRequest } from '../../loadtest/src/raw/request.ts';
import { SseReader } from '../../loadtest/src/raw/sse-reader.ts';
import { historyBatches } from '../../loadtest/src/storm/history.ts';
import { RawSubscriber } from '../../loadtest/src/storm/raw-subscriber.ts';
import { ReferenceReplay } from '../../loadtest/src/storm/reference-replay.ts';
import { historyData, replayExpectation } from '../../loadtest/src/storm/replay-check.ts';
import { eventually } from '../helpers/server.ts';

interface Ev {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** The head of a chunked event stream. */
const HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';

/** HEAD and `body` in HTTP chunks of the given sizes (cycled), with the terminator. */
function chunked(body: string, sizes: number[]): Buffer {
  const bytes = Buffer.from(body);
  const out: Buffer[] = [Buffer.from(HEAD)];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const part = bytes.subarray(at, at + Math.max(1, sizes[i % sizes.length]!));
    out.push(Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n'));
    at += part.length;
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(out);
}

/**
 * Reads a raw response fed in pieces cut at `cuts` (byte positions); its status and events. With
 * `reuse`, every piece is fed from one buffer that is overwritten after each feed, as a socket
 * reading into one shared buffer does (raw/reading-socket.ts): a view kept past a feed reads junk.
 */
function read(raw: Buffer, cuts: number[], reuse = false) {
  const scratch = Buffer.alloc(raw.length);
  const events: Ev[] = [];
  let status = 0;
  let ended = false;
  const sse = new SseReader((id, event, data) => events.push({ id, event, data: data.toString() }));
  const http = new HttpResponseParser({
    onHead: (s) => {
      status = s;
    },
    onBody: (b) => sse.feed(b),
    onEnd: () => {
      ended = true;
    },
  });
  let from = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < raw.length), raw.length]) {
    if (cut <= from) continue;
    if (reuse) {
      raw.copy(scratch, 0, from, cut);
      http.feed(scratch.subarray(0, cut - from));
      scratch.fill(0x7e);
    } else http.feed(raw.subarray(from, cut));
    from = cut;
  }
  return { status, events, ended };
}

/** What eventsource-parser makes of the same SSE text in one piece. */
function reference(text: string): Ev[] {
  const events: Ev[] = [];
  const parser = createParser({
    onEvent: (e) => events.push({ id: e.id, event: e.event, data: e.data }),
  });
  parser.feed(text);
  return events;
}

const SAMPLE =
  'retry: 2000\n\n: ping\n\nevent: reset\ndata: {"reason":"x"}\n\nid: 1-0\ndata: a\ndata: b\n\n' +
  'id: 1-1\r\ndata:é😀\r\n\r\nid: 1-2\rdata: c\r\revent:\ndata\n\n';

describe('storm receiver: HTTP and SSE framing', () => {
  test('a response split at every byte position gives the same events as eventsource-parser', () => {
    const raw = chunked(SAMPLE, [7, 1, 30]);
    const want = reference(SAMPLE);
    assert.equal(want.length, 5);
    for (const reuse of [false, true]) {
      for (let cut = 0; cut <= raw.length; cut++) {
        const r = read(raw, [cut], reuse);
        assert.deepEqual(r.events, want, `cut at ${cut}, reuse ${reuse}`);
        assert.equal(r.ended, true);
      }
      const oneByOne = read(
        raw,
        Array.from(raw, (_, i) => i),
        reuse,
      );
      assert.deepEqual(oneByOne.events, want);
      assert.equal(oneByOne.status, 200);
    }
  });

  test('CR, LF and CRLF anywhere, chunked and cut anywhere, fresh or reused buffers: as eventsource-parser reads it', () => {
    const line = fc.oneof(
      fc.constantFrom('', ': c', 'retry: 5', 'event: e', 'event:', 'data', 'id: 7-1', 'x: y'),
      fc
        .string({ unit: fc.constantFrom('a', 'é', '😀', ' ', ':'), maxLength: 6 })
        .map((v) => `data:${v}`),
    );
    const text = fc
      .array(fc.tuple(line, fc.constantFrom('\n', '\r', '\r\n')), { maxLength: 20 })
      .map((lines) => `${lines.map(([l, end]) => l + end).join('')}\n\n`);
    const sizes = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 });
    const cuts = fc.array(fc.nat({ max: 400 }), { maxLength: 8 });
    fc.assert(
      fc.property(text, sizes, cuts, (t, s, c) => {
        const raw = chunked(t, s);
        const cuts = c.sort((a, b) => a - b);
        assert.deepEqual(read(raw, cuts).events, reference(t));
        assert.deepEqual(read(raw, cuts, true).events, reference(t), 'read from a reused buffer');
      }),
      { numRuns: 300 },
    );
  });

  test('a CRLF split between two HTTP chunks ends one line, not two', () => {
    const raw = Buffer.from(`${HEAD}8\r\ndata: a\r\r\n1\r\n\n\r\n2\r\n\r\n\r\n0\r\n\r\n`);
    assert.deepEqual(read(raw, []).events, [{ id: undefined, event: undefined, data: 'a' }]);
  });

  test('broken chunk framing is an HttpFramingError', () => {
    const good = chunked('data: a\n\n', [4]).toString('latin1');
    const badSize = good.replace('4\r\n', 'g\r\n');
    const noCrlf = good.replace('data\r\n', 'dataX\n');
    const short = good.replace('4\r\n', '3\r\n');
    for (const raw of [badSize, noCrlf, short]) {
      assert.throws(() => read(Buffer.from(raw), []), HttpFramingError, JSON.stringify(raw));
    }
    assert.throws(() => read(Buffer.from('HTTP/1.1 2OO OK\r\n\r\n'), []), HttpFramingError);
  });

  test('a Content-Length body and a 503 are read to their end', () => {
    const notice = 'retry: 1500\nevent: overloaded\ndata: {"error":"max_connections"}\n\n';
    const raw = `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: ${notice.length}\r\n\r\n${notice}`;
    const r = read(Buffer.from(raw), [40, 90]);
    assert.deepEqual(
      r.events.map((e) => e.event),
      ['overloaded'],
    );
    assert.equal(r.ended, true);
    const refused = read(
      Buffer.from(
        'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nRetry-After: 1\r\n\r\n{}',
      ),
      [],
    );
    assert.equal(refused.status, 503);
    assert.equal(refused.ended, true);
  });

  test('history batches stay within 1000 events and the body budget, in seq order', () => {
    const batches = historyBatches(2500, 10);
    assert.deepEqual(
      batches.map((b) => b.size),
      [1000, 1000, 500],
    );
    const big = historyBatches(101, 1024);
    assert.ok(big.every((b) => Buffer.byteLength(b.body) <= 60_000));
    assert.equal(
      big.reduce((n, b) => n + b.size, 0),
      101,
    );
    const items = big.flatMap((b) => JSON.parse(b.body) as { data: string }[]);
    assert.equal(items[100]!.data, historyData(100, 1024));
    assert.equal(historyData(7, 1024).length, 1024);
  });
});

/** Answers each connection with `raw` in three pieces, then ends it (the last chunk included). */
async function rawServer(raw: string): Promise<{ port: number; close: () => void }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      const bytes = Buffer.from(raw, 'latin1');
      const third = Math.ceil(bytes.length / 3);
      socket.write(bytes.subarray(0, third));
      setImmediate(() => {
        socket.write(bytes.subarray(third, 2 * third));
        setImmediate(() => socket.end(bytes.subarray(2 * third)));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

const K = 5;
const IDS = Array.from({ length: K + 1 }, (_, seq) => `1764000000000-${seq}`);
const frame = (seq: number, data = historyData(seq, 40)) => `id: ${IDS[seq]}\ndata: ${data}\n\n`;

/**
 * One RawSubscriber against a server answering `raw`: its outcome and checks. With a reference it
 * compares its body with it where it can (reference-replay.ts).
 */
async function subscribeTo(
  raw: string,
  reference: ReferenceReplay | null = null,
): Promise<RawSubscriber> {
  const server = await rawServer(raw);
  try {
    return await new Promise<RawSubscriber>((resolve) => {
      const sub = new RawSubscriber(replayExpectation(IDS, 40), resolve, reference);
      const url = new URL(`http://127.0.0.1:${server.port}/sse/channels/c`);
      sub.start({
        host: '127.0.0.1',
        port: server.port,
        request: eventStreamRequest(url, IDS[0]!),
      });
    });
  } finally {
    server.close();
  }
}

/** A replay of `seqs` (frames in that order, optionally altered) as a chunked response. */
const replay = (frames: string[]) =>
  chunked(`retry: 1000\n\n${frames.join('')}`, [100]).toString('latin1');
const seqs = (...list: number[]) => list.map((s) => frame(s));

describe('storm receiver: a replay checked event by event', () => {
  test('every event once, in order: served', async () => {
    const sub = await subscribeTo(replay(seqs(1, 2, 3, 4, 5)));
    assert.deepEqual(sub.outcome, { kind: 'served', reason: 'served' });
    assert.equal(sub.check.distinct, K);
    assert.ok(sub.servedAt! >= sub.firstEventAt! && sub.firstEventAt! >= sub.connectAt);
  });

  test('a gap, a duplicate, a swap and a wrong byte are each caught', async () => {
    const gap = await subscribeTo(replay(seqs(1, 2, 4, 5)));
    assert.deepEqual(gap.outcome, { kind: 'failed', reason: 'ended_early' });
    assert.equal(gap.check.lost(gap.endedByServer), 1);
    const dup = await subscribeTo(replay(seqs(1, 2, 2, 3, 4, 5)));
    assert.equal(dup.outcome?.kind, 'served');
    assert.equal(dup.check.duplicated, 1);
    const again = await subscribeTo(replay(seqs(0, 1, 2, 3, 4, 5)));
    assert.equal(again.check.duplicated, 1, "the Last-Event-ID's own event");
    const swap = await subscribeTo(replay(seqs(1, 3, 2, 4, 5)));
    assert.equal(swap.outcome?.kind, 'served');
    assert.equal(swap.check.outOfOrder, 1);
    const wrong = historyData(4, 40).replace('xx', 'xy');
    const bad = await subscribeTo(replay([...seqs(1, 2, 3), frame(4, wrong), frame(5)]));
    assert.equal(bad.check.corrupted, 1);
    assert.equal(bad.outcome?.kind, 'failed');
    const badId = await subscribeTo(
      replay([...seqs(1, 2), frame(3).replace('-3', '-9'), ...seqs(4, 5)]),
    );
    assert.equal(badId.check.corrupted, 1);
  });

  test('a wrong byte in the chunk framing fails the subscriber', async () => {
    const raw = replay(seqs(1, 2, 3, 4, 5));
    const sub = await subscribeTo(raw.replace('\r\n64\r\n', '\r\n65\r\n'));
    assert.deepEqual(sub.outcome, { kind: 'failed', reason: 'bad_http_framing' });
  });

  test('a reset, a notice and a 503 are told apart', async () => {
    const reset = await subscribeTo(
      replay([
        'event: reset\ndata: {"reason":"history_exceeded","lastEventId":"x"}\n\n',
        ...seqs(2),
      ]),
    );
    assert.deepEqual(reset.outcome, { kind: 'reset', reason: 'history_exceeded' });
    const notice = 'retry: 900\nevent: unavailable\ndata: {"error":"broker_unavailable"}\n\n';
    const refused = await subscribeTo(
      `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: ${notice.length}\r\n\r\n${notice}`,
    );
    assert.deepEqual(refused.outcome, { kind: 'refused', reason: 'unavailable' });
    const status = await subscribeTo(
      'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}',
    );
    assert.deepEqual(status.outcome, { kind: 'refused', reason: 'http_503' });
  });
});

/** What a subscriber's checks say, to compare the two ways of reading. */
const verdict = (s: RawSubscriber) => ({
  outcome: s.outcome,
  distinct: s.check.distinct,
  lost: s.check.lost(s.endedByServer),
  duplicated: s.check.duplicated,
  outOfOrder: s.check.outOfOrder,
  corrupted: s.check.corrupted,
});

describe('storm receiver: a replay compared with a reference', () => {
  const good = replay(seqs(1, 2, 3, 4, 5));

  test('the first served body becomes the reference; the next ones are compared, not read', async () => {
    const reference = new ReferenceReplay(replayExpectation(IDS, 40));
    const first = await subscribeTo(good, reference);
    assert.equal(first.outcome?.kind, 'served');
    assert.equal(first.comparedBytes, 0, 'the recorder reads event by event');
    assert.equal(reference.ends.length, K);
    assert.equal(reference.bytes!.length, reference.ends[K - 1]);
    const next = await subscribeTo(good, reference);
    assert.deepEqual(verdict(next), verdict(first));
    assert.equal(next.comparedBytes, reference.bytes!.length, 'every byte compared');
    assert.ok(next.servedAt! >= next.firstEventAt! && next.firstEventAt! >= next.connectAt);
  });

  test('a gap, a duplicate, a swap, a wrong byte, a comment: the same verdict as read event by event', async () => {
    const reference = new ReferenceReplay(replayExpectation(IDS, 40));
    await subscribeTo(good, reference);
    assert.ok(reference.bytes !== null);
    const wrong = historyData(4, 40).replace('xx', 'xy');
    const cases = [
      replay(seqs(1, 2, 4, 5)),
      replay(seqs(1, 2, 2, 3, 4, 5)),
      replay(seqs(0, 1, 2, 3, 4, 5)),
      replay(seqs(1, 3, 2, 4, 5)),
      replay([...seqs(1, 2, 3), frame(4, wrong), frame(5)]),
      replay([...seqs(1, 2), frame(3).replace('-3', '-9'), ...seqs(4, 5)]),
      replay([...seqs(1, 2), ': heartbeat\n\n', ...seqs(3, 4, 5)]),
      replay([...seqs(1, 2), 'event: reset\ndata: {"reason":"history_exceeded"}\n\n']),
    ];
    let comparedBytes = 0;
    for (const raw of cases) {
      const compared = await subscribeTo(raw, reference);
      const read = await subscribeTo(raw);
      assert.deepEqual(verdict(compared), verdict(read), raw);
      comparedBytes += compared.comparedBytes;
    }
    // Up to the fault (a whole read that holds it is read event by event).
    assert.ok(comparedBytes > 0, 'bytes were compared');
  });

  test('a subscriber that began before the reference joins it at an event end', async () => {
    const expect = replayExpectation(IDS, 40);
    const reference = new ReferenceReplay(expect);
    // A body read until the connection closes: connections 1 (the recorder) and 2 get the head
    // and events 1-2, then wait for their gate.
    const sse = `retry: 1000\n\n${seqs(1, 2, 3, 4, 5).join('')}`;
    const head = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n';
    const body = Buffer.from(head + sse, 'latin1');
    const cut = head.length + sse.indexOf(frame(3));
    const gates: (() => void)[] = [];
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write(body.subarray(0, cut));
        void new Promise<void>((r) => gates.push(r)).then(() => {
          socket.end(body.subarray(cut));
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const url = new URL(`http://127.0.0.1:${port}/sse/channels/c`);
    const target = { host: '127.0.0.1', port, request: eventStreamRequest(url, IDS[0]!) };
    try {
      const subs: RawSubscriber[] = [];
      const done = [0, 1].map(
        () =>
          new Promise<RawSubscriber>((resolve) => {
            const sub = new RawSubscriber(expect, resolve, reference);
            subs.push(sub);
          }),
      );
      subs[0]!.start(target);
      await eventually(() => subs[0]!.check.distinct === 2, 5000, 'the recorder has events 1-2');
      subs[1]!.start(target);
      await eventually(() => subs[1]!.check.distinct === 2, 5000, 'the second has events 1-2');
      gates[0]!();
      const recorder = await done[0]!;
      assert.equal(recorder.outcome?.kind, 'served');
      assert.ok(reference.bytes !== null);
      gates[1]!();
      const joined = await done[1]!;
      assert.deepEqual(verdict(joined), verdict(recorder));
      assert.equal(joined.comparedBytes, body.length - cut, 'compared from the end of event 2');
    } finally {
      for (const g of gates) g();
      server.close();
    }
  });
});
