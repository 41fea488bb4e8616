// GET /sse/test: the tRPC-Cpp example's stream, exact on the wire.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EXAMPLE_HEADERS, exampleBody } from '../helpers/example.ts';
import {
  dechunk,
  rawExchange,
  splitResponse,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const get = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`;

describe('GET /sse/test', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('status, headers in the example order, and the ten events byte for byte, one interval apart', async () => {
    const started = Date.now();
    const raw = await rawExchange(t.port, get('/sse/test?interval_ms=20'));
    const { status, headers, body } = splitResponse(raw);
    assert.equal(status, 'HTTP/1.1 200 OK');
    assert.deepEqual(headers.slice(0, EXAMPLE_HEADERS.length), EXAMPLE_HEADERS);
    assert.ok(headers.includes('X-Accel-Buffering: no'));
    assert.ok(!headers.some((h) => /^content-encoding:/i.test(h)), 'no compression');
    const { payload, complete, chunks } = dechunk(body);
    assert.equal(payload, exampleBody());
    assert.ok(complete, 'the chunked body ends with the terminator');
    assert.equal(chunks.length, 10, 'one chunk per event when paced');
    assert.ok(Date.now() - started >= 9 * 20 - 5, 'events are paced by interval_ms');
  });

  test('the default pacing is one second apart (first two events)', async () => {
    const raw = await rawExchange(t.port, get('/sse/test?count=2'));
    const { body } = splitResponse(raw);
    const { payload, chunks } = dechunk(body);
    assert.equal(payload, exampleBody(0, 2));
    assert.equal(chunks.length, 2);
  });

  test('interval_ms=0 sends everything in one chunk and ends', async () => {
    const raw = await rawExchange(t.port, get('/sse/test?interval_ms=0'));
    const { body } = splitResponse(raw);
    const { payload, complete, chunks } = dechunk(body);
    assert.equal(payload, exampleBody());
    assert.equal(chunks.length, 1);
    assert.ok(complete);
  });

  test('count changes the number of events', async () => {
    const raw = await rawExchange(t.port, get('/sse/test?count=3&interval_ms=0'));
    assert.equal(dechunk(splitResponse(raw).body).payload, exampleBody(0, 3));
  });

  test('keep-alive: two streams in a row on one connection', async () => {
    const req = `GET /sse/test?interval_ms=0&count=2 HTTP/1.1\r\nHost: x\r\n\r\n`;
    const raw = await rawExchange(
      t.port,
      req + req.replace('HTTP', 'HTTP').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
    );
    const responses = raw.split('HTTP/1.1 200 OK').filter(Boolean);
    assert.equal(responses.length, 2);
    for (const r of responses) {
      assert.equal(dechunk(r.slice(r.indexOf('\r\n\r\n') + 4)).payload, exampleBody(0, 2));
    }
  });

  test('Last-Event-ID k resumes at k+1', async () => {
    const raw = await rawExchange(t.port, get('/sse/test?interval_ms=0', 'Last-Event-ID: 6\r\n'));
    assert.equal(dechunk(splitResponse(raw).body).payload, exampleBody(7, 10));
  });

  test('Last-Event-ID at or past the end answers 204 No Content', async () => {
    for (const id of ['9', '50']) {
      const raw = await rawExchange(t.port, get('/sse/test', `Last-Event-ID: ${id}\r\n`));
      const { status, headers, body } = splitResponse(raw);
      assert.equal(status, 'HTTP/1.1 204 No Content');
      assert.ok(headers.includes('Access-Control-Allow-Origin: *'));
      assert.equal(body, '');
    }
  });

  test('bad count, interval_ms and Last-Event-ID answer 400 JSON naming the parameter', async () => {
    const cases: [string, string, string][] = [
      ['/sse/test?count=0', '', 'count'],
      ['/sse/test?count=100001', '', 'count'],
      ['/sse/test?count=abc', '', 'count'],
      ['/sse/test?count=1.5', '', 'count'],
      ['/sse/test?interval_ms=-1', '', 'interval_ms'],
      ['/sse/test?interval_ms=60001', '', 'interval_ms'],
      ['/sse/test', 'Last-Event-ID: abc\r\n', 'Last-Event-ID'],
      ['/sse/test', 'Last-Event-ID: -1\r\n', 'Last-Event-ID'],
    ];
    for (const [path, extra, parameter] of cases) {
      const res = await fetch(`${t.base}${path}`, {
        headers: extra ? { 'Last-Event-ID': extra.split(': ')[1]!.trim() } : {},
      });
      assert.equal(res.status, 400, path);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const body = (await res.json()) as { error: string; parameter: string; message: string };
      assert.equal(body.error, 'bad_request');
      assert.equal(body.parameter, parameter);
      if (parameter !== 'Last-Event-ID') assert.match(body.message, /from \d+ to \d+/);
    }
  });

  test('OPTIONS preflight answers 204 with the CORS headers', async () => {
    const res = await fetch(`${t.base}/sse/test`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'GET' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const allowed = res.headers.get('access-control-allow-headers') ?? '';
    assert.match(allowed, /Cache-Control/);
    assert.match(allowed, /Last-Event-ID/);
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /GET/);
  });

  test('wrong method answers 405 with Allow; unknown routes 404 JSON', async () => {
    const post = await fetch(`${t.base}/sse/test`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.match(post.headers.get('allow') ?? '', /GET/);
    assert.equal(((await post.json()) as { error: string }).error, 'method_not_allowed');
    for (const path of ['/sse/nope', '/nope', '/sse']) {
      const res = await fetch(`${t.base}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { error: string }).error, 'not_found');
    }
    const del = await fetch(`${t.base}/healthz`, { method: 'DELETE' });
    assert.equal(del.status, 405);
    assert.equal(del.headers.get('allow'), 'GET, HEAD');
  });

  test('HEAD answers the stream headers with no body', async () => {
    const raw = await rawExchange(
      t.port,
      `HEAD /sse/test HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    const { status, headers, body } = splitResponse(raw);
    assert.equal(status, 'HTTP/1.1 200 OK');
    assert.ok(headers.includes('Content-Type: text/event-stream'));
    assert.equal(body, '');
  });

  test('HTTP/1.0 gets the events unchunked and the connection closed at the end', async () => {
    const raw = await rawExchange(t.port, `GET /sse/test?interval_ms=0 HTTP/1.0\r\n\r\n`);
    const { status, headers, body } = splitResponse(raw);
    assert.match(status, /^HTTP\/1\.1 200 OK$/);
    assert.ok(!headers.some((h) => /^transfer-encoding/i.test(h)));
    assert.equal(body, exampleBody());
  });

  test('health and readiness answer JSON', async () => {
    const h = await fetch(`${t.base}/healthz`);
    assert.deepEqual(await h.json(), { status: 'ok' });
    const r = await fetch(`${t.base}/readyz`);
    assert.deepEqual(await r.json(), { status: 'ready', broker: { type: 'memory', up: true } });
  });

  test('malformed HTTP gets a JSON 400, not a hang', async () => {
    const raw = await rawExchange(t.port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 400 Bad Request/);
    assert.match(raw, /"error":"bad_request"/);
  });
});

describe('CORS with a list of allowed origins', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ cors: { allowedOrigins: ['https://app.example'] } });
  });
  after(() => t.close());

  test('an allowed origin is echoed with Vary; another gets no Allow-Origin', async () => {
    const ok = await rawExchange(
      t.port,
      get('/sse/test?interval_ms=0&count=1', 'Origin: https://app.example\r\n'),
    );
    assert.ok(
      splitResponse(ok).headers.includes('Access-Control-Allow-Origin: https://app.example'),
    );
    assert.ok(splitResponse(ok).headers.includes('Vary: Origin'));
    const other = await rawExchange(
      t.port,
      get('/sse/test?interval_ms=0&count=1', 'Origin: https://evil.example\r\n'),
    );
    assert.ok(
      !splitResponse(other).headers.some((h) => h.startsWith('Access-Control-Allow-Origin')),
    );
  });
});
