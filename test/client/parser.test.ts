// Parser: the WHATWG "parse an event stream" rules, on bytes split at every awkward place.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createEventParser, type SseEvent } from '../../services/client/src/parser.ts';

interface Parsed {
  events: SseEvent[];
  retries: number[];
  tooLarge: number[];
  lastEventId: string;
}

const enc = new TextEncoder();

function parse(
  chunks: Uint8Array[],
  options: { maxEventBytes?: number; lastEventId?: string } = {},
): Parsed {
  const out: Parsed = { events: [], retries: [], tooLarge: [], lastEventId: '' };
  const parser = createEventParser({
    ...options,
    onEvent: (e) => out.events.push({ id: e.id, event: e.event, data: e.data }),
    onRetry: (ms) => out.retries.push(ms),
    onTooLarge: (limit) => out.tooLarge.push(limit),
  });
  for (const chunk of chunks) parser.feed(chunk);
  out.lastEventId = parser.lastEventId;
  return out;
}

const parseText = (text: string, options?: { maxEventBytes?: number; lastEventId?: string }) =>
  parse([enc.encode(text)], options);

const ev = (data: string, id = '', event = 'message'): SseEvent => ({ id, event, data });

describe('parser: spec cases', () => {
  test('the example stream: 10 message events with ids', () => {
    let text = '';
    for (let n = 1; n <= 10; n++)
      text += `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
    const { events } = parseText(text);
    assert.equal(events.length, 10);
    assert.deepEqual(events[9], ev('{"msg": "hello", "idx": 10}', '10'));
  });

  test('one leading BOM is stripped; a second one makes the first line an unknown field', () => {
    assert.deepEqual(parseText('\uFEFFdata: a\n\n').events, [ev('a')]);
    assert.deepEqual(parseText('\uFEFF\uFEFFdata: a\n\ndata: b\n\n').events, [ev('b')]);
    // A BOM later in the stream is data, not stripped.
    assert.deepEqual(parseText('data: a\n\n\uFEFFdata: b\n\ndata: \uFEFFc\n\n').events, [
      ev('a'),
      ev('\uFEFFc'),
    ]);
    // Text that merely looks like a BOM read as latin1 stays.
    assert.deepEqual(parseText('\u00EF\u00BB\u00BFdata: a\n\ndata: b\n\n').events, [ev('b')]);
  });

  test('CR, LF and CRLF all end lines; multi-line data joins with LF', () => {
    assert.deepEqual(parseText('data: a\rdata: b\r\n\r\ndata: c\n\ndata: d\r\r').events, [
      ev('a\nb'),
      ev('c'),
      ev('d'),
    ]);
    assert.deepEqual(parseText('data: x\ndata\ndata:y\ndata:  z\n\n').events, [ev('x\n\ny\n z')]);
  });

  test('comments and unknown fields are ignored; field names are case-sensitive', () => {
    assert.deepEqual(parseText(': hi\n:\nfoo: bar\nData: no\ndata: a\n\n').events, [ev('a')]);
  });

  test('retry takes ASCII digits only', () => {
    const { retries, events } = parseText(
      'retry: 1500\n\nretry: 15x\n\nretry: -1\n\nretry:  200\n\nretry\n\nretry:0\ndata: a\n\n',
    );
    assert.deepEqual(retries, [1500, 0]);
    assert.deepEqual(events, [ev('a')]);
  });

  test('the last event ID persists across events; an empty id resets it; NULL ids are ignored', () => {
    const { events, lastEventId } = parseText(
      'id: 7\ndata: a\n\ndata: b\n\nid: 8\u00009\ndata: c\n\nid\ndata: d\n\nid: 9\n\ndata: e\n\n',
    );
    assert.deepEqual(events, [ev('a', '7'), ev('b', '7'), ev('c', '7'), ev('d', ''), ev('e', '9')]);
    assert.equal(lastEventId, '9');
  });

  test('the event type defaults to "message" and resets after each event', () => {
    assert.deepEqual(parseText('event: ping\ndata: x\n\ndata: y\n\nevent:\ndata: z\n\n').events, [
      ev('x', '', 'ping'),
      ev('y'),
      ev('z'),
    ]);
  });

  test('a block without data is not dispatched; empty data is', () => {
    assert.deepEqual(parseText('event: foo\n\nid: 1\n\n\n\ndata\n\ndata:\n\n').events, [
      ev('', '1'),
      ev('', '1'),
    ]);
  });

  test('a partial event at EOF is not dispatched and does not set the last event ID', () => {
    const a = parseText('data: a\n\nid: 5\ndata: b\n');
    assert.deepEqual(a.events, [ev('a')]);
    assert.equal(a.lastEventId, '');
    assert.deepEqual(parseText('data: a').events, []);
  });

  test('an initial last event ID (--last-event-id) applies until the stream sends an id', () => {
    assert.deepEqual(parseText('data: a\n\nid: 2\ndata: b\n\n', { lastEventId: '1' }).events, [
      ev('a', '1'),
      ev('b', '2'),
    ]);
  });

  test('invalid UTF-8 becomes U+FFFD', () => {
    const bytes = new Uint8Array([...enc.encode('data: a'), 0xff, ...enc.encode('b\n\n')]);
    assert.deepEqual(parse([bytes]).events, [ev('a\uFFFDb')]);
  });

  test('reset() starts a new connection: partial input dropped, BOM stripped again, ID kept', () => {
    const events: SseEvent[] = [];
    const parser = createEventParser({ onEvent: (e) => events.push({ ...e }) });
    parser.feed(enc.encode('\uFEFFid: 3\ndata: a\n\ndata: partial'));
    parser.reset();
    parser.feed(enc.encode('\uFEFFdata: b\n\n'));
    assert.deepEqual(events, [ev('a', '3'), ev('b', '3')]);
    assert.equal(parser.lastEventId, '3');
  });
});

describe('parser: maximum event size', () => {
  test('a line that never ends trips the limit, naming it', () => {
    const r = parse(
      [enc.encode('data: '), enc.encode('x'.repeat(40)), enc.encode('x'.repeat(40))],
      {
        maxEventBytes: 64,
      },
    );
    assert.deepEqual(r.tooLarge, [64]);
    assert.deepEqual(r.events, []);
  });

  test('an event that never ends (many data lines) trips the limit', () => {
    const r = parseText('data: 0123456789\n'.repeat(10), { maxEventBytes: 64 });
    assert.deepEqual(r.tooLarge, [64]);
  });

  test('many events each under the limit are fine', () => {
    const r = parseText(`data: ${'y'.repeat(50)}\n\n`.repeat(100), { maxEventBytes: 64 });
    assert.equal(r.events.length, 100);
    assert.deepEqual(r.tooLarge, []);
  });

  test('after tripping, the rest of the connection is ignored', () => {
    const r = parse([enc.encode(`data: ${'z'.repeat(100)}`), enc.encode('\n\ndata: late\n\n')], {
      maxEventBytes: 64,
    });
    assert.deepEqual(r.tooLarge, [64]);
    assert.deepEqual(r.events, []);
  });
});

describe('parser: maximum event size counts UTF-8 bytes', () => {
  // An unfinished line is buffered with its "data: " prefix (6 bytes); finished data lines are
  // buffered as their values joined with LF. é is 2 bytes, € 3, 😀 4 (and 2 UTF-16 units).
  test('an unfinished line of exactly the limit is fine, one byte more trips it', () => {
    const at = parse([enc.encode(`data: ${'é'.repeat(29)}`), enc.encode('\n\n')], {
      maxEventBytes: 64,
    });
    assert.deepEqual(at.tooLarge, []);
    assert.deepEqual(at.events, [ev('é'.repeat(29))]);
    // 36 characters, 65 bytes.
    const over = parse([enc.encode(`data: ${'é'.repeat(29)}a`), enc.encode('\n\n')], {
      maxEventBytes: 64,
    });
    assert.deepEqual(over.tooLarge, [64]);
    assert.deepEqual(over.events, []);
  });

  test('the byte that crosses the limit may sit inside a character split across chunks', () => {
    const bytes = enc.encode(`data: ${'€'.repeat(19)}é\n\n`); // 63 bytes, then é = 2 more
    const parser = { tooLarge: [] as number[], events: [] as SseEvent[] };
    const p = createEventParser({
      maxEventBytes: 64,
      onEvent: (e) => parser.events.push({ ...e }),
      onTooLarge: (limit) => parser.tooLarge.push(limit),
    });
    p.feed(bytes.subarray(0, 64)); // up to and including the first byte of é
    assert.deepEqual(parser.tooLarge, []);
    p.feed(bytes.subarray(64, 65)); // its second byte: 65 bytes buffered
    assert.deepEqual(parser.tooLarge, [64]);
    p.feed(bytes.subarray(65));
    assert.deepEqual(parser.events, []);
  });

  test('data lines of an event add up in bytes, with the LF between them', () => {
    const fits = `data: ${'€'.repeat(10)}\ndata: ${'€'.repeat(11)}\n`; // 30 + 1 + 33 = 64
    const ok = parse([enc.encode(fits), enc.encode('\n')], { maxEventBytes: 64 });
    assert.deepEqual(ok.tooLarge, []);
    assert.deepEqual(ok.events, [ev(`${'€'.repeat(10)}\n${'€'.repeat(11)}`)]);
    // 4-byte characters: 41 UTF-16 units, but 40 + 1 + 40 = 81 bytes.
    const emoji = `data: ${'😀'.repeat(10)}\ndata: ${'😀'.repeat(10)}\n\n`;
    assert.deepEqual(parseText(emoji, { maxEventBytes: 64 }).tooLarge, [64]);
  });

  test('property: an unfinished line trips the bound exactly when its UTF-8 bytes exceed it', () => {
    const text = fc
      .string({ unit: 'grapheme', maxLength: 60 })
      .map((s) => s.replace(/[\r\n]/g, ''));
    fc.assert(
      fc.property(text, fc.integer({ min: 16, max: 200 }), (value, limit) => {
        const line = `data: ${value}`;
        const r = parse([enc.encode(line)], { maxEventBytes: limit });
        assert.deepEqual(r.tooLarge, Buffer.byteLength(line) > limit ? [limit] : []);
      }),
    );
  });

  test('multi-byte ids and event types come through decoded', () => {
    const r = parseText('id: ü-1\nevent: größe\ndata: ok\n\n');
    assert.deepEqual(r.events, [ev('ok', 'ü-1', 'größe')]);
    assert.equal(r.lastEventId, 'ü-1');
  });
});

// A stream with every tricky shape: BOM, CR/LF/CRLF, multi-byte UTF-8 (2, 3 and 4 bytes), comments,
// retry, NULL id, empty id, multi-line data, unknown fields and a partial event at the end.
const TRICKY =
  '\uFEFFid: 1\r\ndata: héllo\r\n\r\n: comment\revent: wörld\rdata: 日本\rdata: 🎉\r\r' +
  'retry: 250\nid: a\u0000b\ndata:\n\nfoo\ndata:x\r\n\r\nid\n\ndata: after reset\n\n' +
  'data: partial 🎉';

const TRICKY_EVENTS: SseEvent[] = [
  ev('héllo', '1'),
  ev('日本\n🎉', '1', 'wörld'),
  ev('', '1'),
  ev('x', '1'),
  ev('after reset', ''),
];

describe('parser: split bytes', () => {
  const bytes = enc.encode(TRICKY);

  test('the whole stream at once', () => {
    const r = parse([bytes]);
    assert.deepEqual(r.events, TRICKY_EVENTS);
    assert.deepEqual(r.retries, [250]);
  });

  test('every split point (two chunks), including CR|LF and inside UTF-8 sequences', () => {
    for (let i = 0; i <= bytes.length; i++) {
      const r = parse([bytes.subarray(0, i), bytes.subarray(i)]);
      assert.deepEqual(r.events, TRICKY_EVENTS, `split at byte ${i}`);
      assert.deepEqual(r.retries, [250], `split at byte ${i}`);
    }
  });

  test('one byte per chunk', () => {
    const chunks = Array.from(bytes, (b) => new Uint8Array([b]));
    assert.deepEqual(parse(chunks).events, TRICKY_EVENTS);
  });

  test('CR and LF of one CRLF in different chunks is one line end, not two', () => {
    const r = parse([
      enc.encode('data: a\r'),
      enc.encode('\ndata: b\r'),
      enc.encode('\n\r'),
      enc.encode('\n'),
    ]);
    assert.deepEqual(r.events, [ev('a\nb')]);
  });

  test('property: any chunking of the tricky stream parses the same', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 30 }),
        (cuts) => {
          const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
          const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
          const r = parse(chunks);
          assert.deepEqual(r.events, TRICKY_EVENTS);
          assert.deepEqual(r.retries, [250]);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: random events survive encoding and any chunking', () => {
    const field = fc
      .string({ unit: 'grapheme', maxLength: 12 })
      .map((s) => s.replace(/[\r\n\0]/g, ''));
    const event = fc.record({
      id: fc.option(field, { nil: undefined }),
      event: fc.option(field, { nil: undefined }),
      data: fc.array(field, { minLength: 1, maxLength: 3 }),
    });
    const eol = fc.constantFrom('\n', '\r', '\r\n');
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 8 }),
        eol,
        fc.array(fc.nat(), { maxLength: 10 }),
        (evs, nl, cutSeeds) => {
          let text = '';
          let lastId = '';
          const expected: SseEvent[] = [];
          for (const e of evs) {
            if (e.id !== undefined) text += `id: ${e.id}${nl}`;
            if (e.event !== undefined) text += `event: ${e.event}${nl}`;
            for (const line of e.data) text += `data: ${line}${nl}`;
            text += nl;
            if (e.id !== undefined) lastId = e.id;
            expected.push(ev(e.data.join('\n'), lastId, e.event || 'message'));
          }
          const b = enc.encode(text);
          const cuts = [...new Set(cutSeeds.map((s) => (b.length ? s % b.length : 0)))].sort(
            (x, y) => x - y,
          );
          const points = [0, ...cuts, b.length];
          const chunks = points.slice(1).map((end, i) => b.subarray(points[i], end));
          assert.deepEqual(parse(chunks).events, expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
