// Hostile requests (docs/RELIABILITY.md, rows "bad input" and "slow requests"): each gets a 4xx
// JSON answer, the server keeps serving, and no request gets a 500 for bad input.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createSseServer, type SseServer } from '../../services/server/src/app.ts';
import { buildServerConfig } from '../../services/server/src/config.ts';
import {
  HEADERS_TIMEOUT_MS,
  REQUEST_TIMEOUT_MS,
} from '../../services/server/src/http/socket-limits.ts';
import { createLogger } from '../../services/server/src/logger.ts';
import { connect, jsonBodyOf, recordUntilClose, statusOf } from '../helpers/raw-socket.ts';
import {
  dechunk,
  publish,
  rawExchange,
  Subscriber,
  splitResponse,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const post = (path: string, body: string, headers: string) =>
  `POST ${path} HTTP/1.1\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
const JSON_HOST = 'Host: 127.0.0.1\r\nContent-Type: application/json\r\n';

describe('hostile input gets a 4xx JSON answer', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  const cases: [string, () => string, number, string][] = [
    [
      'malformed percent-encoding in the publish path',
      () => post('/channels/%zz/events', '{"data":1}', JSON_HOST),
      400,
      'bad_request',
    ],
    [
      'malformed percent-encoding in a stream path',
      () => `GET /sse/channels/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      400,
      'bad_request',
    ],
    [
      'JSON nested 5000 deep',
      () =>
        post('/channels/a/events', `{"data":${'['.repeat(5000)}${']'.repeat(5000)}}`, JSON_HOST),
      400,
      'bad_request',
    ],
    [
      'JSON nested 65 deep (the limit is 64)',
      () => post('/channels/a/events', `{"data":${'['.repeat(64)}${']'.repeat(64)}}`, JSON_HOST),
      400,
      'bad_request',
    ],
    [
      'a 100 KB header',
      () => `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
      431,
      'headers_too_large',
    ],
    [
      'HTTP/1.1 without Host',
      () => 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n',
      400,
      'bad_request',
    ],
    ['a request line that is not HTTP', () => 'HELLO WORLD\r\n\r\n', 400, 'bad_request'],
    [
      'publish with Content-Type text/plain',
      () =>
        post('/channels/a/events', '{"data":1}', 'Host: 127.0.0.1\r\nContent-Type: text/plain\r\n'),
      415,
      'unsupported_media_type',
    ],
    [
      'publish without Content-Type',
      () => post('/channels/a/events', '{"data":1}', 'Host: 127.0.0.1\r\n'),
      415,
      'unsupported_media_type',
    ],
    [
      'publish from Origin https://evil.example (CSRF)',
      () =>
        post('/channels/a/events', '{"data":1}', `${JSON_HOST}Origin: https://evil.example\r\n`),
      403,
      'forbidden',
    ],
    [
      'publish from Origin null (sandboxed page)',
      () => post('/channels/a/events', '{"data":1}', `${JSON_HOST}Origin: null\r\n`),
      403,
      'forbidden',
    ],
    [
      'publish with Host evil.example (DNS rebinding)',
      () =>
        post(
          '/channels/a/events',
          '{"data":1}',
          'Host: evil.example:24856\r\nContent-Type: application/json\r\n',
        ),
      403,
      'forbidden',
    ],
  ];
  for (const [name, request, status, error] of cases) {
    test(`${name}: ${status} ${error}`, async () => {
      const raw = await rawExchange(t.port, request());
      assert.equal(statusOf(raw), status, raw.slice(0, 300));
      assert.match(raw, /Content-Type: application\/json/i);
      assert.equal(jsonBodyOf(raw).error, error);
    });
  }

  test('JSON nested 64 deep and a loopback Origin are accepted (202)', async () => {
    const ok = post(
      '/channels/a/events',
      `{"data":${'['.repeat(63)}${']'.repeat(63)}}`,
      `${JSON_HOST}Origin: http://localhost:3000\r\n`,
    );
    assert.equal(statusOf(await rawExchange(t.port, ok)), 202);
    const rebound = post(
      '/channels/a/events',
      '{"data":1}',
      'Host: localhost:8080\r\nContent-Type: application/json; charset=utf-8\r\n',
    );
    assert.equal(statusOf(await rawExchange(t.port, rebound)), 202);
  });

  test('brackets inside JSON strings do not count as nesting', async () => {
    const body = JSON.stringify({ data: `${'['.repeat(500)}\\"{{{{`, event: 'x' });
    assert.equal(
      statusOf(await rawExchange(t.port, post('/channels/a/events', body, JSON_HOST))),
      202,
    );
  });

  test('the server still serves after all of them', async () => {
    assert.equal((await fetch(`${t.base}/healthz`)).status, 200);
  });
});

describe('slow requests are timed out with 408 JSON; streams are not', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
    // Shortened on the live server so the test stays short; node reads them at every check (1 s).
    t.server.http.headersTimeout = 1000;
    t.server.http.requestTimeout = 2000;
  });
  after(() => t.close());

  test('the defaults are explicit: headers 10 s, request 30 s, keep-alive 5 s, 16 KiB of headers', async () => {
    const u = await startServer();
    try {
      assert.equal(u.server.http.headersTimeout, HEADERS_TIMEOUT_MS);
      assert.equal(HEADERS_TIMEOUT_MS, 10_000);
      assert.equal(u.server.http.requestTimeout, REQUEST_TIMEOUT_MS);
      assert.equal(REQUEST_TIMEOUT_MS, 30_000);
      assert.equal(u.server.http.keepAliveTimeout, 5000);
    } finally {
      await u.close();
    }
  });

  test('headers one byte per 100 ms (slowloris) get 408 JSON after headersTimeout', async (t2) => {
    const { socket, closed, started } = await recordUntilClose(t.port);
    const head =
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    let i = 0;
    const drip = setInterval(() => {
      if (socket.writable && i < head.length) socket.write(head[i++]!);
    }, 100);
    const raw = await closed;
    clearInterval(drip);
    t2.diagnostic(
      `slowloris held ${Date.now() - started} ms (headersTimeout 1000 ms, checked every 1000 ms)`,
    );
    assert.equal(statusOf(raw), 408, raw);
    assert.equal(jsonBodyOf(raw).error, 'request_timeout');
  });

  test('a socket that never sends anything is closed after headersTimeout', async (t2) => {
    const socket = await connect(t.port);
    const started = Date.now();
    await new Promise((r) => socket.once('close', r));
    t2.diagnostic(`idle socket closed after ${Date.now() - started} ms`);
  });

  test('a body that never ends gets 408 JSON after requestTimeout', async (t2) => {
    const { socket, closed, started } = await recordUntilClose(t.port);
    socket.write(
      'POST /channels/a/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"data":',
    );
    const raw = await closed;
    t2.diagnostic(`unfinished body held ${Date.now() - started} ms (requestTimeout 2000 ms)`);
    assert.equal(statusOf(raw), 408, raw);
    assert.equal(jsonBodyOf(raw).error, 'request_timeout');
  });

  test('a stream longer than requestTimeout is not cut by it', async () => {
    const raw = await rawExchange(
      t.port,
      'GET /sse/test?interval_ms=250&count=14 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const { payload, complete } = dechunk(splitResponse(raw).body);
    assert.ok(complete, 'the 3.25 s stream ended cleanly');
    assert.equal(payload.split('\n\n').length - 1, 14);
  });
});

describe('an unexpected error in a stream route', () => {
  const logged: Record<string, unknown>[] = [];
  let t: { base: string; server: SseServer; close(): Promise<void> };
  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean))
          logged.push(JSON.parse(line));
        done();
      },
    });
    const server = createSseServer(buildServerConfig({ host: '127.0.0.1', port: 0 }), {
      logger: createLogger('error', sink),
    });
    const { port } = await server.listen();
    t = { base: `http://127.0.0.1:${port}`, server, close: () => server.shutdown() };
  });
  after(() => t.close());

  test('is a 500 for that request alone, logged once: other streams go on, the process lives', async () => {
    const other = new Subscriber(`${t.base}/sse/channels/calm`);
    await other.opened;
    const streams = t.server.streams;
    const admit = streams.admit.bind(streams);
    streams.admit = () => {
      streams.admit = admit;
      throw new Error('boom (injected by the test)');
    };
    const failed = await fetch(`${t.base}/sse/channels/doomed`);
    assert.equal(failed.status, 500);
    assert.equal(((await failed.json()) as { error: string }).error, 'internal');

    const hub = t.server.hub;
    const subscribe = hub.subscribe.bind(hub);
    hub.subscribe = () => {
      hub.subscribe = subscribe;
      throw new Error('boom in subscribe (injected by the test)');
    };
    const failed2 = await fetch(`${t.base}/sse/channels/doomed2`);
    assert.equal(failed2.status, 500);
    await failed2.body?.cancel();

    const res = await publish(t.base, 'calm', { data: 'still here' });
    assert.equal(res.status, 202);
    await other.waitFor(1);
    assert.equal(other.events[0]!.data, 'still here');
    other.close();
    const errors = logged
      .filter((l) => l.level === 50)
      .map((l) => (l.err as { message: string }).message);
    assert.deepEqual(errors, [
      'boom (injected by the test)',
      'boom in subscribe (injected by the test)',
    ]);
  });
});
