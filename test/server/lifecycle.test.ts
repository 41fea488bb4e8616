// Stream lifecycle: heartbeat, client aborts without leaks, graceful shutdown, config errors.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { runNode, spawnServer } from '../helpers/process.ts';
import {
  dechunk,
  eventually,
  openStreams,
  publish,
  rawExchange,
  Subscriber,
  splitResponse,
  startServer,
  subscribers,
  type TestServer,
} from '../helpers/server.ts';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('heartbeat', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ heartbeatMs: 40 });
  });
  after(() => t.close());

  test('idle streams get a comment line; busy ones do not need it', async () => {
    const sub = new Subscriber(`${t.base}/sse/channels/quiet`);
    await sub.opened;
    await eventually(() => sub.comments.length >= 2, 5000, 'two heartbeats');
    assert.ok(sub.comments.every((c) => c.trim() === 'ping'));
    assert.equal(sub.events.length, 0, 'heartbeats dispatch no events');
    sub.close();
  });

  test('the demo stream is kept alive between slow events too', async () => {
    const raw = await rawExchange(
      t.port,
      'GET /sse/test?count=2&interval_ms=300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const { payload } = dechunk(splitResponse(raw).body);
    assert.match(payload, /^event: message\n[\s\S]*: ping\n\n[\s\S]*id: 1\n\n$/s);
  });
});

describe('clients that go away', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('aborting many streams leaves no connection, timer or socket behind', async () => {
    const baseline = timers();
    const agent = new http.Agent({ keepAlive: false });
    for (let round = 0; round < 4; round++) {
      const reqs: http.ClientRequest[] = [];
      const opened: Promise<void>[] = [];
      for (let i = 0; i < 50; i++) {
        const path =
          i % 2 ? '/sse/test?interval_ms=1000&count=1000' : `/sse/channels/churn${i % 5}`;
        const req = http.get(`${t.base}${path}`, { agent });
        req.on('error', () => {});
        opened.push(new Promise((r) => req.on('response', () => r())));
        reqs.push(req);
      }
      await Promise.all(opened);
      assert.equal(openStreams(t.server), 50);
      for (const req of reqs) req.destroy();
      await eventually(() => openStreams(t.server) === 0, 5000, 'registry to empty');
    }
    await publish(t.base, 'churn0', { data: 'after' });
    for (let i = 0; i < 5; i++) assert.equal(subscribers(t.server, `churn${i}`), 0);
    await eventually(() => timers() <= baseline, 5000, 'demo timers to be cleared');
    await eventually(
      () => new Promise<boolean>((r) => t.server.http.getConnections((_e, n) => r(n === 0))),
      5000,
      'server sockets to close',
    );
    const metrics = await (await fetch(`${t.base}/metrics`)).text();
    assert.match(metrics, /^sse_connections_active\{route="\/sse\/test"\} 0$/m);
    agent.destroy();
  });
});

describe('graceful shutdown (a real process and SIGTERM)', () => {
  test('open streams get a retry line and a clean end; the process exits 0', async () => {
    const srv = await spawnServer({ SSE_RETRY_MS: '1000', SSE_SHUTDOWN_RETRY_JITTER_MS: '4000' });
    try {
      const subs = [
        new Subscriber(`${srv.base}/sse/channels/live`),
        new Subscriber(`${srv.base}/sse/test?count=100&interval_ms=200`),
      ];
      await Promise.all(subs.map((s) => s.opened));
      await subs[1]!.waitFor(1);
      const ready = await fetch(`${srv.base}/readyz`);
      assert.equal(ready.status, 200);
      srv.kill('SIGTERM');
      const code = await srv.exited;
      assert.equal(code, 0);
      await Promise.all(subs.map((s) => s.closed));
      for (const s of subs) {
        assert.equal(s.ended, true, 'the response ended normally (complete chunked encoding)');
        assert.equal(s.aborted, false);
        assert.ok(s.retry !== null && s.retry >= 1000 && s.retry <= 5000, `retry ${s.retry}`);
      }
      assert.ok(subs[1]!.events.length < 100);
      const events = srv.logs.map((l) => l.event);
      assert.ok(events.includes('shutdown') && events.includes('stopped'));
      assert.ok(!srv.logs.some((l) => Number(l.level) >= 50), 'nothing logged as an error');
    } finally {
      srv.kill('SIGKILL');
    }
  });

  test('a second process exits 0 on SIGINT with no streams open', async () => {
    const srv = await spawnServer();
    srv.kill('SIGINT');
    assert.equal(await srv.exited, 0);
  });

  test('while draining, readiness is 503 and new streams are refused', async () => {
    const t = await startServer({ shutdownTimeoutMs: 2000 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get(`${t.base}${path}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
    assert.equal(await get('/readyz'), 200);
    t.server.lifecycle.draining = true;
    assert.equal(await get('/readyz'), 503);
    assert.equal(await get('/sse/test'), 503);
    agent.destroy();
    await t.close();
  });
});

describe('configuration errors', () => {
  test('a bad environment value exits 2 with one line naming the key, value and rule', async () => {
    const r = await runNode(['services/server/src/main.ts'], {
      SSE_MAX_CONNECTIONS: '-1',
      PORT: '0',
    });
    assert.equal(r.code, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /server\.yaml: limits\.maxConnections = -1 \(from environment variable SSE_MAX_CONNECTIONS\): .*>=1/,
    );
  });

  test('a broken config file exits 2 naming the file', async () => {
    const r = await runNode(['services/server/src/main.ts'], {
      SSE_CONFIG: '/nonexistent/server.yaml',
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\/nonexistent\/server\.yaml: cannot read the config file \(ENOENT\)/);
  });

  test('a port in use exits 1 with a clear log line', async () => {
    const srv = await spawnServer();
    try {
      const r = await runNode(['services/server/src/main.ts'], {
        PORT: String(srv.port),
        HOST: '127.0.0.1',
      });
      assert.equal(r.code, 1);
      assert.match(r.stdout, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    } finally {
      srv.kill('SIGKILL');
    }
  });
});
