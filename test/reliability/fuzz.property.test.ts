// A fast-check property (docs/RELIABILITY.md): random methods, paths, headers and bodies never
// get a 5xx, always get an answer (a 4xx with a JSON body when refused), and the server keeps
// answering. FC_SEED=<n> replays a run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { statusOf } from '../helpers/raw-socket.ts';
import { rawExchange, startServer, type TestServer } from '../helpers/server.ts';

const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'OPTIONS',
  'PATCH',
  'TRACE',
  'CONNECT',
  'FOO',
  'get',
];
const PREFIXES = [
  '/',
  '/sse/test',
  '/sse/channels/',
  '/channels/',
  '/healthz',
  '/readyz',
  '/metrics',
  '/sse/',
  '//',
  '/%',
];
const SUFFIXES = [
  '',
  '/events',
  '?count=',
  '?interval_ms=0&count=',
  '?lastEventId=',
  '/events?x=',
  '%zz',
  '%',
  '%00',
  '%2F..',
];
const segment = fc.string({
  unit: fc.constantFrom(...Array.from('aZ09._:-%/?&=#~ 2fF\u00e9\u{1f600}')),
  maxLength: 40,
});
const path = fc
  .tuple(
    fc.constantFrom(...PREFIXES),
    segment,
    fc.constantFrom(...SUFFIXES),
    fc.option(fc.nat(200_000)),
  )
  .map(([p, s, x, n]) =>
    encodeURI(`${p}${s}${x}${n ?? ''}`)
      .replace(/%25/g, '%')
      .replace(/%20/g, '+'),
  );
const headerName = fc.constantFrom(
  'Content-Type',
  'Origin',
  'Last-Event-ID',
  'Authorization',
  'Connection',
  'Accept',
  'Transfer-Encoding',
  'Expect',
  'X-Any',
);
const headerValue = fc.oneof(
  fc.constantFrom(
    'application/json',
    'text/plain',
    'close',
    'keep-alive',
    'https://evil.example',
    'null',
    'chunked',
    '100-continue',
    'Bearer x',
    '-1',
    '99999999999999999999',
  ),
  fc.string({ unit: fc.constantFrom(...'ab1 ;=/,"\\\t'.split('')), maxLength: 30 }),
);
const body = fc.oneof(
  fc.constant(''),
  fc.json({ depthSize: 'medium' }),
  fc.string({ maxLength: 200 }),
  fc.constantFrom(
    '{"data":',
    '[]',
    '[{"data":1,"x":2}]',
    '{"data":"a","event":"b\\nc"}',
    '{"data":null}',
    `{"data":${'['.repeat(100)}`,
  ),
);

describe('property: no input gets a 5xx', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ limits: { maxConnections: 1000 } });
  });
  after(() => t.close());

  test('random requests', async (d) => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        path,
        fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
        body,
        fc.nat(4).map((n) => n > 0),
        async (method, p, headers, b, withHost) => {
          const lines = headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
          const host = withHost ? 'Host: 127.0.0.1\r\n' : '';
          const len = b === '' ? '' : `Content-Length: ${Buffer.byteLength(b)}\r\n`;
          const req = `${method} ${p} HTTP/1.1\r\n${host}${lines}${len}Connection: close\r\n\r\n${b}`;
          // Streams do not end by themselves: the status line is all this property needs.
          const raw = await rawExchange(t.port, req, (soFar) => soFar.includes('\r\n\r\n'), 10_000);
          const status = statusOf(raw);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status === 0 && process.env.FC_SHOW_CLOSED)
            process.stderr.write(`${JSON.stringify(req)}\n`);
          // Always an answer (0: closed without one), never a 5xx, every refusal in JSON.
          if (status >= 400 && !/\r\ncontent-type: application\/json/i.test(raw)) return false;
          return status >= 100 && status < 500;
        },
      ),
      { numRuns: 3000, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
    d.diagnostic(
      `statuses over 3000 random requests: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
    assert.equal((await fetch(`${t.base}/healthz`)).status, 200);
  });
});
