// The server's explanation in an error line: JSON message or the first 200 bytes, one line,
// read with a bound on bytes and time.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import {
  ERROR_TEXT_BYTES,
  explainErrorBody,
  oneLine,
  readBounded,
} from '../../services/client/src/error-body.ts';

const bytes = (s: string) => Buffer.from(s, 'utf8');

describe('explainErrorBody', () => {
  test('a JSON object with a string message: the message', () => {
    assert.equal(
      explainErrorBody(bytes('{"error":"bad_request","message":"count must be 1..1000"}')),
      'count must be 1..1000',
    );
  });

  test('JSON without a string message, or not JSON: the text itself', () => {
    assert.equal(explainErrorBody(bytes('{"error":"x","message":5}')), '{"error":"x","message":5}');
    assert.equal(explainErrorBody(bytes('null')), 'null');
    assert.equal(explainErrorBody(bytes('<h1>Bad Gateway</h1>')), '<h1>Bad Gateway</h1>');
    assert.equal(explainErrorBody(bytes('')), '');
  });

  test('control characters and line breaks become single spaces', () => {
    assert.equal(explainErrorBody(bytes('a\r\nb\t\tc\x1b[31md\x00 ')), 'a b c [31md');
    assert.equal(explainErrorBody(bytes('{"message":"one\\ntwo\\u0007"}')), 'one two');
  });

  test('only the first 200 bytes, never half a character', () => {
    const long = 'x'.repeat(ERROR_TEXT_BYTES + 50);
    assert.equal(explainErrorBody(bytes(long)), 'x'.repeat(ERROR_TEXT_BYTES));
    // 199 ASCII bytes + a 3-byte character: the character does not fit and is left out whole.
    const cut = `${'y'.repeat(ERROR_TEXT_BYTES - 1)}€tail`;
    assert.equal(explainErrorBody(bytes(cut)), 'y'.repeat(ERROR_TEXT_BYTES - 1));
    const message = JSON.stringify({ message: '€'.repeat(100) });
    assert.equal(explainErrorBody(bytes(message)), '€'.repeat(66)); // 198 bytes
  });

  test('oneLine trims and folds', () => {
    assert.equal(oneLine('  a \n\n b  '), 'a b');
  });
});

describe('readBounded', () => {
  test('stops at the byte bound without waiting for the end', async () => {
    const body = new PassThrough();
    body.write('a'.repeat(30));
    body.write('b'.repeat(30));
    const got = await readBounded(body, 40, 60_000);
    assert.equal(got.toString(), `${'a'.repeat(30)}${'b'.repeat(10)}`);
    body.destroy();
  });

  test('returns what arrived when the body ends, fails or stalls', async () => {
    const ended = new PassThrough();
    ended.end('done');
    assert.equal((await readBounded(ended, 4096, 60_000)).toString(), 'done');

    const failed = new PassThrough();
    failed.write('half');
    setImmediate(() => failed.destroy(new Error('reset')));
    assert.equal((await readBounded(failed, 4096, 60_000)).toString(), 'half');

    const destroyed = new PassThrough();
    destroyed.destroy();
    assert.equal((await readBounded(destroyed, 4096, 60_000)).length, 0);

    const stalled = new PassThrough();
    stalled.write('so far');
    assert.equal((await readBounded(stalled, 4096, 50)).toString(), 'so far');
    stalled.destroy();
  });
});
