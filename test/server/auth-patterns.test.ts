// The small parts of the token check: channel patterns (syntax and matching), where a token is
// read (header, query parameter, cookie; odd cookie headers) and the redaction of access_token
// from logged URLs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ALL_TOKEN_SOURCES,
  cookieValue,
  findToken,
  queryToken,
  redactAccessToken,
} from '../../services/server/src/auth/token-source.ts';
import {
  ChannelPatterns,
  claimCovers,
  isValidPattern,
  patternMatches,
} from '../../services/server/src/channel-names.ts';

test('pattern syntax: a channel name, or a name (or nothing) then one "*"', () => {
  for (const p of [
    'orders',
    'orders.*',
    'user.42.*',
    '*',
    'a:b-c_d.e',
    'x'.repeat(128),
    `${'x'.repeat(128)}*`,
  ]) {
    assert.ok(isValidPattern(p), p);
  }
  for (const p of ['', '**', 'a*b', '*a', 'a b', 'orders.#', 'é', 'x'.repeat(129), 'a**', 'a*.*']) {
    assert.ok(!isValidPattern(p), p);
  }
});

test('matching: exact names, prefixes before "*", and "*" for everything', () => {
  const cases: [string, string, boolean][] = [
    ['orders', 'orders', true],
    ['orders', 'orders.1', false],
    ['orders.*', 'orders.1', true],
    ['orders.*', 'orders.', true],
    ['orders.*', 'orders', false],
    ['orders.*', 'ordersX', false],
    ['user.42.*', 'user.42.inbox', true],
    ['user.42.*', 'user.420.inbox', false],
    ['*', 'anything', true],
    ['a*b', 'a*b', true],
    ['a*b', 'axb', false],
    ['', '', true],
  ];
  for (const [pattern, channel, expected] of cases) {
    assert.equal(patternMatches(pattern, channel), expected, `${pattern} ~ ${channel}`);
  }
  const compiled = new ChannelPatterns(['lobby', 'public.*']);
  assert.ok(
    compiled.matches('lobby') && compiled.matches('public.x') && compiled.matches('public.'),
  );
  assert.ok(!compiled.matches('lobby.x') && !compiled.matches('public') && !compiled.matches('x'));
  assert.ok(new ChannelPatterns(['*']).matches('zzz'));
  assert.ok(new ChannelPatterns([]).empty && !new ChannelPatterns([]).matches('x'));
});

test('a claim is an array of strings, or malformed, whatever matched first', () => {
  assert.equal(claimCovers(['a', 'b.*'], 'b.1'), true);
  assert.equal(claimCovers([], 'b.1'), false);
  assert.equal(claimCovers(['b.*', 3], 'b.1'), 'malformed');
  for (const bad of ['b.*', null, undefined, 7, { 0: 'b.*' }]) {
    assert.equal(claimCovers(bad, 'b.1'), 'malformed');
  }
});

test('ChannelPatterns agrees with patternMatches on random patterns and names', () => {
  const char = fc.constantFrom('a', 'b', '.', ':', '1');
  const name = fc.string({ unit: char, minLength: 1, maxLength: 6 });
  const pattern = fc.oneof(
    name,
    name.map((n) => `${n}*`),
    fc.constant('*'),
  );
  fc.assert(
    fc.property(fc.array(pattern, { maxLength: 5 }), name, (patterns, channel) => {
      const expected = patterns.some((p) => patternMatches(p, channel));
      assert.equal(new ChannelPatterns(patterns).matches(channel), expected);
      assert.equal(claimCovers(patterns, channel), expected);
    }),
    { numRuns: 500 },
  );
});

test('query parameter: the first non-empty access_token, percent-decoded', () => {
  assert.equal(queryToken('/sse/channels/a?access_token=abc'), 'abc');
  assert.equal(queryToken('/sse/channels/a?x=1&access_token=a%2Bb&access_token=z'), 'a+b');
  assert.equal(queryToken('/sse/channels/a?access_token=&access_token=second'), 'second');
  assert.equal(queryToken('/sse/channels/a?access%5Ftoken=enc'), 'enc');
  assert.equal(queryToken('/sse/channels/a?access_token'), null);
  assert.equal(queryToken('/sse/channels/a'), null);
  assert.equal(queryToken(undefined), null);
});

test('cookies: robust to odd headers', () => {
  const cases: [string | string[] | undefined, string | null][] = [
    ['sse_token=abc', 'abc'],
    ['a=1; sse_token=abc; b=2', 'abc'],
    ['a=1;sse_token=abc', 'abc'],
    ['  sse_token =  abc  ;', 'abc'],
    ['sse_token="abc"', 'abc'],
    ['sse_token=a%2Eb', 'a.b'],
    ['sse_token=%E0%A4%A', '%E0%A4%A'],
    ['sse_token=; sse_token=second', 'second'],
    ['xsse_token=abc; sse_tokenx=def', null],
    ['sse_token', null],
    [';;;=;==; =abc', null],
    ['', null],
    [undefined, null],
    [['a=1', 'sse_token=arr'], 'arr'],
    ['sse_token=a=b=c', 'a=b=c'],
    ['sse_token="', '"'],
  ];
  for (const [header, expected] of cases) {
    assert.equal(cookieValue(header, 'sse_token'), expected, JSON.stringify(header));
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (header) => {
      const v = cookieValue(header, 'sse_token');
      assert.ok(v === null || (typeof v === 'string' && v.length > 0));
    }),
    { numRuns: 500 },
  );
});

test('token lookup: header, then query, then cookie; the first one found decides', () => {
  const req = {
    headers: { authorization: 'Bearer h', cookie: 'sse_token=c' },
    url: '/x?access_token=q',
  };
  assert.deepEqual(findToken(req, ALL_TOKEN_SOURCES, 'sse_token'), {
    token: 'h',
    source: 'header',
  });
  assert.deepEqual(
    findToken({ ...req, headers: { cookie: 'sse_token=c' } }, ALL_TOKEN_SOURCES, 'sse_token'),
    {
      token: 'q',
      source: 'query',
    },
  );
  assert.deepEqual(
    findToken({ headers: { cookie: 'sse_token=c' }, url: '/x' }, ALL_TOKEN_SOURCES, 'sse_token'),
    {
      token: 'c',
      source: 'cookie',
    },
  );
  // A non-Bearer Authorization header does not hold a token.
  assert.deepEqual(
    findToken(
      { headers: { authorization: 'Basic eDp5' }, url: '/x?access_token=q' },
      ALL_TOKEN_SOURCES,
      'sse_token',
    ),
    { token: 'q', source: 'query' },
  );
  assert.equal(
    findToken({ headers: { cookie: 'sse_token=c' }, url: '/x' }, ['header', 'query'], 'sse_token'),
    null,
  );
  assert.deepEqual(findToken({ headers: { cookie: 'mine=c' } }, ALL_TOKEN_SOURCES, 'mine'), {
    token: 'c',
    source: 'cookie',
  });
});

test('redactAccessToken: the token never survives, the rest is kept', () => {
  const cases: [string, string][] = [
    ['/sse/channels/a', '/sse/channels/a'],
    ['/sse/channels/a?lastEventId=1', '/sse/channels/a?lastEventId=1'],
    ['/sse/channels/a?access_token=SECRET', '/sse/channels/a?access_token=[redacted]'],
    [
      '/sse/channels/a?x=1&access_token=SECRET&y=2&access_token=AGAIN',
      '/sse/channels/a?x=1&access_token=[redacted]&y=2&access_token=[redacted]',
    ],
    ['/a?access%5Ftoken=SECRET', '/a?access_token=[redacted]'],
    ['/a?access_token', '/a?access_token=[redacted]'],
    [
      'https://h.example/a?access_token=SECRET#frag',
      'https://h.example/a?access_token=[redacted]#frag',
    ],
    ['/a?my_access_token=keep', '/a?my_access_token=keep'],
  ];
  for (const [url, expected] of cases) assert.equal(redactAccessToken(url), expected, url);
  // Whatever the URL, what the token lookup would read is not in the redacted text.
  const part = fc.oneof(
    fc.constantFrom(
      'access_token',
      'access%5Ftoken',
      'access%5ftoken',
      'x',
      '&',
      '=',
      '?',
      '#',
      '%',
      '+',
    ),
    fc.string({ unit: fc.constantFrom('S', 'E', 'C', 'R', '1'), minLength: 4, maxLength: 8 }),
  );
  fc.assert(
    fc.property(fc.array(part, { maxLength: 12 }), (parts) => {
      const url = `/sse/channels/a?${parts.join('')}`;
      const redacted = redactAccessToken(url);
      const q = redacted.indexOf('?');
      const hash = redacted.indexOf('#', q);
      const values = new URLSearchParams(redacted.slice(q + 1, hash < 0 ? undefined : hash));
      assert.ok(
        values.getAll('access_token').every((v) => v === '[redacted]'),
        redacted,
      );
      if (queryToken(url) !== null) assert.equal(queryToken(redacted), '[redacted]');
    }),
    { numRuns: 1000 },
  );
});
