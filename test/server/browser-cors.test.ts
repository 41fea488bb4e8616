// What browsers need from the stream and publish routes: CORS with credentials, CORS headers on
// every answer (errors, 204, preflight), and capacity/shutdown refusals an EventSource survives.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { BrokerUnavailableError } from '../../services/server/src/broker/broker.ts';
import { buildServerConfig, loadServerConfig } from '../../services/server/src/config.ts';
import { HttpError } from '../../services/server/src/http/errors.ts';
import { noticeOf, refusalNotice } from '../../services/server/src/refusals.ts';
import { refusalOf } from '../../services/server/src/routes/refusal-of.ts';
import { DrainingError } from '../../services/server/src/sse/hub.ts';
import { ConfigError } from '../../services/shared/config-file.ts';
import { Subscriber, startServer, type TestServer } from '../helpers/server.ts';

const ALLOWED = 'http://page.example:8080';
const OTHER = 'http://evil.example';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with node:http (fetch would hide Origin handling); the body read to its end. */
function request(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      { method: options.method ?? 'GET', headers: options.headers, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

function assertCredentialed(a: Answer, what: string): void {
  assert.equal(a.headers['access-control-allow-origin'], ALLOWED, what);
  assert.equal(a.headers['access-control-allow-credentials'], 'true', what);
  assert.match(String(a.headers.vary), /Origin/, what);
}

describe('CORS with credentials', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ cors: { allowedOrigins: [ALLOWED], allowCredentials: true } });
  });
  after(() => t.close());

  test('a listed origin is echoed with Allow-Credentials on streams, 204 and preflights', async () => {
    const origin = { origin: ALLOWED };
    assertCredentialed(
      await request(t.base, '/sse/test?interval_ms=0', { headers: origin }),
      'demo',
    );
    assertCredentialed(
      await request(t.base, '/sse/test', { headers: { ...origin, 'last-event-id': '9' } }),
      '204',
    );
    for (const path of ['/sse/test', '/sse/channels/news', '/channels/news/events']) {
      const pre = await request(t.base, path, {
        method: 'OPTIONS',
        headers: {
          ...origin,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'last-event-id',
        },
      });
      assert.equal(pre.status, 204, path);
      assertCredentialed(pre, `preflight ${path}`);
      assert.match(String(pre.headers['access-control-allow-headers']), /Last-Event-ID/i);
    }
    const sub = new Subscriber(`${t.base}/sse/channels/news`, origin);
    await sub.opened;
    assert.equal(sub.headers['access-control-allow-credentials'], 'true');
    assert.equal(sub.headers['access-control-allow-origin'], ALLOWED);
    sub.close();
  });

  test('another origin gets neither Allow-Origin nor Allow-Credentials', async () => {
    const a = await request(t.base, '/sse/test?interval_ms=0', { headers: { origin: OTHER } });
    assert.equal(a.status, 200);
    assert.equal(a.headers['access-control-allow-origin'], undefined);
    assert.equal(a.headers['access-control-allow-credentials'], undefined);
    assert.match(String(a.headers.vary), /Origin/);
  });

  test('"*" with credentials is a start-up config error naming the key', () => {
    assert.throws(
      () => buildServerConfig({ cors: { allowedOrigins: ['*'], allowCredentials: true } }),
      /allowCredentials/,
    );
    assert.throws(
      () => loadServerConfig({ SSE_CORS_ORIGINS: '*', SSE_CORS_CREDENTIALS: 'true' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /cors\.allowCredentials/.test(err.message) &&
        /"\*"/.test(err.message),
    );
    const ok = loadServerConfig({ SSE_CORS_ORIGINS: ALLOWED, SSE_CORS_CREDENTIALS: 'true' });
    assert.equal(ok.cors.allowCredentials, true);
    assert.equal(loadServerConfig({}).cors.allowCredentials, false);
  });
});

describe('CORS headers on every answer', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ cors: { allowedOrigins: [ALLOWED] }, subscribe: { token: 's3cret' } });
  });
  after(() => t.close());

  const cases: [string, string, string, number, string?][] = [
    ['count=0', 'GET', '/sse/test?count=0', 400],
    ['bad Last-Event-ID', 'GET', '/sse/test?lastEventId=abc', 400],
    ['unknown stream route', 'GET', '/sse/nope', 404],
    ['POST on a stream route', 'POST', '/sse/test', 405],
    ['bad channel name', 'GET', '/sse/channels/bad%20name?access_token=s3cret', 400],
    ['missing subscribe token', 'GET', '/sse/channels/news', 401],
    ['publish: not application/json', 'POST', '/channels/news/events', 415, '{nope'],
    ['publish: GET', 'GET', '/channels/news/events', 405],
  ];
  for (const [name, method, path, status, body] of cases) {
    test(`${name}: ${status} with the CORS headers and a JSON body`, async () => {
      const a = await request(t.base, path, { method, headers: { origin: ALLOWED }, body });
      assert.equal(a.status, status, a.body);
      assert.equal(a.headers['access-control-allow-origin'], ALLOWED);
      assert.match(String(a.headers.vary), /Origin/);
      assert.equal(typeof (JSON.parse(a.body) as { error: unknown }).error, 'string');
    });
  }
});

const NOTICE = /^retry: (\d+)\nevent: (overloaded|shutdown)\ndata: (\{.*\})\n\n$/;
const SSE_ACCEPT = { accept: 'text/event-stream', origin: ALLOWED };

function parseNotice(
  a: Answer,
  allowOrigin = ALLOWED,
): { retry: number; event: string; data: Record<string, unknown> } {
  assert.equal(a.status, 200);
  assert.equal(a.headers['content-type'], 'text/event-stream');
  assert.equal(a.headers['access-control-allow-origin'], allowOrigin);
  const m = NOTICE.exec(a.body);
  assert.ok(m, `not a refusal notice: ${JSON.stringify(a.body)}`);
  return { retry: Number(m[1]), event: m[2]!, data: JSON.parse(m[3]!) as Record<string, unknown> };
}

describe('refusals an EventSource survives', () => {
  test('the retry is Retry-After scaled by a factor in [0.5, 1.5)', () => {
    assert.equal(refusalNotice('max_connections', () => 0)!.retryMs, 2500);
    assert.equal(refusalNotice('max_connections', () => 0.5)!.retryMs, 5000);
    assert.equal(refusalNotice('max_connections', () => 0.9999)!.retryMs, 7500);
    assert.equal(refusalNotice('shutting_down', () => 0)!.event, 'shutdown');
  });

  test('at maxConnections: an event-stream request gets 200 + retry + overloaded, others 503', async () => {
    const t = await startServer({
      cors: { allowedOrigins: [ALLOWED] },
      limits: { maxConnections: 1 },
    });
    const held = new Subscriber(`${t.base}/sse/channels/held`);
    try {
      await held.opened;
      const retries = new Set<number>();
      for (const path of ['/sse/test', '/sse/channels/news', '/sse/test', '/sse/test']) {
        const n = parseNotice(await request(t.base, path, { headers: SSE_ACCEPT }));
        assert.equal(n.event, 'overloaded');
        assert.equal(n.data.error, 'max_connections');
        assert.ok(n.retry >= 2500 && n.retry <= 7500, String(n.retry));
        assert.equal(n.data.retryMs, n.retry);
        retries.add(n.retry);
      }
      assert.ok(retries.size > 1, 'the retry is jittered');
      const plain = await request(t.base, '/sse/test', { headers: { origin: ALLOWED } });
      assert.equal(plain.status, 503);
      assert.equal(plain.headers['retry-after'], '5');
      assert.equal(plain.headers['access-control-allow-origin'], ALLOWED);
      const head = await request(t.base, '/sse/test', { method: 'HEAD', headers: SSE_ACCEPT });
      assert.equal(head.status, 503);
      const metrics = await request(t.base, '/metrics');
      assert.match(metrics.body, /sse_connections_rejected_total\{reason="max_connections"\} 6/);
    } finally {
      held.close();
      await t.close();
    }
  });

  test('per address: an event-stream request gets overloaded, others 429', async () => {
    const t = await startServer({ limits: { maxConnectionsPerIp: 1 } });
    const held = new Subscriber(`${t.base}/sse/channels/held`);
    try {
      await held.opened;
      const n = parseNotice(
        await request(t.base, '/sse/channels/news', { headers: SSE_ACCEPT }),
        '*',
      );
      assert.equal(n.event, 'overloaded');
      assert.equal(n.data.error, 'per_ip_limit');
      const plain = await request(t.base, '/sse/channels/news');
      assert.equal(plain.status, 429);
      assert.equal(plain.headers['retry-after'], '5');
    } finally {
      held.close();
      await t.close();
    }
  });

  test('at limits.maxChannels: an event-stream request gets overloaded/channel_limit, others 503', async () => {
    const t = await startServer({
      cors: { allowedOrigins: [ALLOWED] },
      limits: { maxChannels: 1 },
    });
    const held = new Subscriber(`${t.base}/sse/channels/first`);
    try {
      await held.opened;
      const n = parseNotice(await request(t.base, '/sse/channels/second', { headers: SSE_ACCEPT }));
      assert.equal(n.event, 'overloaded');
      assert.equal(n.data.error, 'channel_limit');
      assert.ok(n.retry >= 15_000 && n.retry <= 45_000, String(n.retry));
      const plain = await request(t.base, '/sse/channels/second', { headers: { origin: ALLOWED } });
      assert.equal(plain.status, 503);
      assert.equal(plain.headers['retry-after'], '30');
      assert.equal(plain.headers['access-control-allow-origin'], ALLOWED);
      assert.equal((JSON.parse(plain.body) as { error: string }).error, 'channel_limit');
    } finally {
      held.close();
      await t.close();
    }
  });

  test('while shutting down: an event-stream request gets a shutdown notice, others 503', async () => {
    const t = await startServer({ cors: { allowedOrigins: [ALLOWED] } });
    try {
      t.server.lifecycle.draining = true;
      const n = parseNotice(await request(t.base, '/sse/test', { headers: SSE_ACCEPT }));
      assert.equal(n.event, 'shutdown');
      assert.equal(n.data.error, 'shutting_down');
      assert.ok(n.retry >= 500 && n.retry <= 1500, String(n.retry));
      const plain = await request(t.base, '/sse/test');
      assert.equal(plain.status, 503);
      assert.equal(plain.headers['retry-after'], '1');
    } finally {
      t.server.lifecycle.draining = false;
      await t.close();
    }
  });
});

test('a stream 503 becomes a notice only for passing reasons', () => {
  const draining = noticeOf(refusalOf(new DrainingError())!, () => 0);
  assert.deepEqual(
    [draining?.event, draining?.reason, draining?.retryMs],
    ['shutdown', 'shutting_down', 500],
  );
  const broker = noticeOf(refusalOf(new BrokerUnavailableError('down'))!, () => 0.5);
  assert.deepEqual(
    [broker?.event, broker?.reason, broker?.retryMs],
    ['unavailable', 'broker_unavailable', 2000],
  );
  const internal = new HttpError(500, { error: 'internal', message: 'internal server error' });
  assert.equal(noticeOf(internal), null);
});
