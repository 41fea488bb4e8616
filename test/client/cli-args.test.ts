// Argument parsing in-process: services/shared/cli.ts and the client's use of it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCliArgs } from '../../services/client/src/cli-args.ts';
import * as cli from '../../services/shared/cli.ts';

describe('services/shared/cli.ts', () => {
  test('parseFlags: unknown flags, missing values and unwanted positionals are UsageErrors', () => {
    const options = { n: { type: 'string' }, on: { type: 'boolean' } } as const;
    assert.deepEqual(
      { ...cli.parseFlags(['--n', '3', '--on'], options).values },
      { n: '3', on: true },
    );
    assert.deepEqual(cli.parseFlags(['x'], options, true).positionals, ['x']);
    for (const argv of [['--bogus'], ['--n'], ['x']]) {
      assert.throws(() => cli.parseFlags(argv, options), cli.UsageError, JSON.stringify(argv));
    }
    assert.throws(
      () => cli.parseFlags(['--bogus'], options),
      (err: Error) => !err.message.includes('\n'),
    );
  });

  test('integer flags: digits only, within the range, undefined when absent', () => {
    assert.equal(cli.integerFlag('--n', '0', 0, 5), 0);
    assert.equal(cli.integerFlag('--n', undefined, 0, 5), undefined);
    for (const raw of ['6', '-1', '1.5', '1e3', '', ' 1']) {
      assert.throws(() => cli.integerFlag('--n', raw, 0, 5), /--n needs an integer from 0 to 5/);
    }
    assert.equal(cli.positiveIntegerFlag('--n', '7'), 7);
    assert.throws(() => cli.positiveIntegerFlag('--n', '0'), cli.UsageError);
  });

  test('URL flags: absolute http(s) only', () => {
    assert.equal(cli.httpUrlFlag('--url', 'https://a.example/x'), 'https://a.example/x');
    assert.equal(cli.httpUrlFlag('--url', undefined), undefined);
    for (const raw of ['a.example/x', 'ftp://a.example/', '/sse']) {
      assert.throws(() => cli.httpUrlFlag('--url', raw), /--url needs an absolute http/);
    }
  });

  test('header flags: "Name: value", later names win, bad names and values refused', () => {
    assert.deepEqual(cli.headerFlags('--header', ['A: 1', 'b:2 ', 'A: 3']), { A: '3', b: '2' });
    assert.deepEqual(cli.headerFlags('--header', undefined), {});
    for (const raw of ['no colon', ': v', 'bad name: v', 'X: a\x01b']) {
      assert.throws(() => cli.headerFlags('--header', [raw]), /--header needs "Name: value"/);
    }
  });
});

describe('client parseCliArgs', () => {
  test('URL from --url, from the positional, or both when equal', () => {
    const u = 'http://127.0.0.1:1/sse';
    assert.equal(parseCliArgs(['--url', u]).url, u);
    assert.equal(parseCliArgs([u]).url, u);
    assert.equal(parseCliArgs([u, '--url', u]).url, u);
    assert.equal(parseCliArgs([]).url, undefined);
  });

  test('two different URLs, two positionals or a bad positional: cli.UsageError', () => {
    const u = 'http://127.0.0.1:1/sse';
    assert.throws(() => parseCliArgs(['--url', u, `${u}2`]), /differ; give one/);
    assert.throws(() => parseCliArgs([u, u]), /at most one URL argument, got 2/);
    assert.throws(() => parseCliArgs(['not-a-url']), /the URL argument needs an absolute/);
  });

  test('--version and --help are flags of their own', () => {
    assert.equal(parseCliArgs(['--version']).version, true);
    assert.equal(parseCliArgs(['-h']).help, true);
    assert.equal(parseCliArgs([]).version, false);
  });
});
