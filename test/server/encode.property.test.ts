// Property: any event the server encodes decodes back to the same thing with a spec parser
// (eventsource-parser), with CR and CRLF in data coming back as LF.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import fc from 'fast-check';
import { encodeEvent, validEventName } from '../../services/server/src/wire/encode.ts';

const eventName = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 20 })
  .filter((s) => validEventName(s));
const data = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\r', '\n', '\r\n', '\0', ' ', ':', 'data: ', 'é', '😀', '\u2028'),
    fc.string({ unit: 'grapheme', maxLength: 3 }),
  ),
  maxLength: 40,
});

function decode(text: string, splits: number[]): EventSourceMessage[] {
  const out: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => out.push(e) });
  let pos = 0;
  for (const at of [...splits].sort((a, b) => a - b)) {
    parser.feed(text.slice(pos, at));
    pos = at;
  }
  parser.feed(text.slice(pos));
  return out;
}

test('encodeEvent round-trips through eventsource-parser, fed in arbitrary pieces', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ event: fc.option(eventName, { nil: undefined }), data, id: fc.nat() }), {
        minLength: 1,
        maxLength: 5,
      }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (events, rawSplits) => {
        const text = events.map((e) => encodeEvent(e.data, e.event, e.id)).join('');
        const splits = rawSplits.map((n) => n % (text.length + 1));
        const decoded = decode(text, splits);
        assert.equal(decoded.length, events.length);
        events.forEach((e, i) => {
          const d = decoded[i]!;
          assert.equal(d.data, e.data.replace(/\r\n|\r/g, '\n'));
          assert.equal(d.event, e.event);
          assert.equal(d.id, String(e.id));
        });
      },
    ),
    { numRuns: 500 },
  );
});

test('event names with CR, LF or NULL are refused', () => {
  for (const bad of ['a\rb', 'a\nb', 'a\0b']) assert.equal(validEventName(bad), false);
  assert.equal(validEventName('update'), true);
});

test('the empty string is delivered as an empty data field', () => {
  assert.deepEqual(
    decode(encodeEvent('', 'x', 1), []).map((e) => e.data),
    [''],
  );
});
