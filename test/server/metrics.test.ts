// GET /metrics: every sse_* metric moves as it should; the exposition passes promtool; a real
// Prometheus scrapes it.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { missingTool, promtoolCheck, startPrometheus } from '../helpers/prometheus.ts';
import {
  eventually,
  publish,
  Subscriber,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const CHANNEL = '/sse/channels/:channel';

/** Parses the text exposition into `name{labels}` -> value. */
async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const v = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

describe('server metrics', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({
      heartbeatMs: 30,
      limits: { maxConnections: 4, maxBufferedBytes: 64 * 1024 },
      subscribe: { token: 'sub' },
      channels: { historySize: 100 },
    });
  });
  after(() => t.close());

  test('the exposition uses the registry content type and has every metric with HELP and TYPE', async () => {
    const res = await fetch(`${t.base}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const expected: [string, string][] = [
      ['sse_connections_active', 'gauge'],
      ['sse_connections_total', 'counter'],
      ['sse_connections_rejected_total', 'counter'],
      ['sse_events_sent_total', 'counter'],
      ['sse_events_published_total', 'counter'],
      ['sse_bytes_sent_total', 'counter'],
      ['sse_fanout_duration_seconds', 'histogram'],
      ['sse_slow_consumer_disconnects_total', 'counter'],
      ['sse_replayed_events_total', 'counter'],
      ['sse_heartbeats_sent_total', 'counter'],
      ['sse_connection_duration_seconds', 'histogram'],
      ['http_request_duration_seconds', 'histogram'],
    ];
    for (const [name, type] of expected) {
      assert.match(text, new RegExp(`^# HELP ${name} \\S.+$`, 'm'), `HELP for ${name}`);
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `TYPE for ${name}`);
    }
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    // Sub-millisecond to seconds.
    assert.match(text, /^sse_fanout_duration_seconds_bucket\{le="0\.0001"\} /m);
    assert.match(text, /^sse_fanout_duration_seconds_bucket\{le="5"\} /m);
  });

  test('opening and closing streams moves the active gauge, totals and durations', async () => {
    const before = await scrape(t.base);
    const subs = [
      new Subscriber(`${t.base}/sse/channels/metric-a?access_token=sub`),
      new Subscriber(`${t.base}/sse/test?count=100&interval_ms=1000`),
    ];
    await Promise.all(subs.map((s) => s.opened));
    const open = await scrape(t.base);
    assert.equal(v(open, `sse_connections_active{route="${CHANNEL}"}`), 1);
    assert.equal(v(open, 'sse_connections_active{route="/sse/test"}'), 1);
    assert.equal(
      v(open, `sse_connections_total{route="${CHANNEL}"}`) -
        v(before, `sse_connections_total{route="${CHANNEL}"}`),
      1,
    );
    for (const s of subs) s.close();
    await eventually(() => t.server.registry.size === 0, 5000, 'streams to close');
    const closed = await scrape(t.base);
    assert.equal(v(closed, `sse_connections_active{route="${CHANNEL}"}`), 0);
    assert.equal(
      v(closed, 'sse_connection_duration_seconds_count{route="/sse/test"}') -
        v(before, 'sse_connection_duration_seconds_count{route="/sse/test"}'),
      1,
    );
  });

  test('publishing counts published events, deliveries, bytes and a fan-out duration per publish', async () => {
    const subs = [1, 2, 3].map(
      () => new Subscriber(`${t.base}/sse/channels/metric-b?access_token=sub`),
    );
    await Promise.all(subs.map((s) => s.opened));
    const before = await scrape(t.base);
    const r = await publish(t.base, 'metric-b', [{ data: 'one' }, { data: 'two' }]);
    assert.equal(r.status, 202);
    await Promise.all(subs.map((s) => s.waitFor(2)));
    const after = await scrape(t.base);
    assert.equal(
      v(after, 'sse_events_published_total') - v(before, 'sse_events_published_total'),
      2,
    );
    assert.equal(
      v(after, `sse_events_sent_total{route="${CHANNEL}"}`) -
        v(before, `sse_events_sent_total{route="${CHANNEL}"}`),
      6,
    );
    const eventBytes = `data: one\nid: ${r.body.ids![0]}\n\ndata: two\nid: ${r.body.ids![1]}\n\n`
      .length;
    assert.ok(
      v(after, 'sse_bytes_sent_total') - v(before, 'sse_bytes_sent_total') >= 3 * eventBytes,
    );
    assert.equal(
      v(after, 'sse_fanout_duration_seconds_count') -
        v(before, 'sse_fanout_duration_seconds_count'),
      1,
    );
    const key =
      'http_request_duration_seconds_count{method="POST",route="/channels/:channel/events",status_code="202"}';
    assert.equal(v(after, key) - v(before, key), 1);
    for (const s of subs) s.close();
  });

  test('replay, heartbeats and the demo route are counted', async () => {
    const r = await publish(t.base, 'metric-c', [{ data: 'a' }, { data: 'b' }, { data: 'c' }]);
    const before = await scrape(t.base);
    const sub = new Subscriber(`${t.base}/sse/channels/metric-c?access_token=sub`, {
      'Last-Event-ID': String(r.body.ids![0]),
    });
    await sub.waitFor(2);
    await eventually(() => sub.comments.length > 0, 5000, 'a heartbeat');
    sub.close();
    const demo = await fetch(`${t.base}/sse/test?interval_ms=0&count=5`);
    await demo.text();
    const after = await scrape(t.base);
    assert.equal(v(after, 'sse_replayed_events_total') - v(before, 'sse_replayed_events_total'), 2);
    assert.ok(v(after, 'sse_heartbeats_sent_total') > v(before, 'sse_heartbeats_sent_total'));
    assert.equal(
      v(after, 'sse_events_sent_total{route="/sse/test"}') -
        v(before, 'sse_events_sent_total{route="/sse/test"}'),
      5,
    );
  });

  test('rejections are counted by reason', async () => {
    const before = await scrape(t.base);
    assert.equal((await fetch(`${t.base}/sse/channels/x`)).status, 401);
    assert.equal((await fetch(`${t.base}/sse/test?count=0`)).status, 400);
    const held = [1, 2, 3, 4].map(() => new Subscriber(`${t.base}/sse/test?count=100`));
    await Promise.all(held.map((s) => s.opened));
    assert.equal((await fetch(`${t.base}/sse/test`)).status, 503);
    for (const s of held) s.close();
    const after = await scrape(t.base);
    for (const reason of ['unauthorized', 'bad_request', 'max_connections']) {
      const key = `sse_connections_rejected_total{reason="${reason}"}`;
      assert.equal(v(after, key) - v(before, key), 1, reason);
    }
    assert.ok(after.has('sse_connections_rejected_total{reason="per_ip_limit"}'));
    await eventually(() => t.server.registry.size === 0, 5000, 'streams to close');
  });

  test('a slow consumer cut is counted', async () => {
    const before = await scrape(t.base);
    const stalled = net.connect(t.port, '127.0.0.1');
    stalled.on('error', () => {});
    stalled.write('GET /sse/channels/metric-slow?access_token=sub HTTP/1.1\r\nHost: x\r\n\r\n');
    stalled.pause();
    await eventually(() => t.server.hub.subscriberCount('metric-slow') === 1, 5000, 'subscriber');
    const big = 'y'.repeat(32 * 1024);
    for (let i = 0; i < 400 && t.server.hub.subscriberCount('metric-slow') > 0; i++) {
      await publish(t.base, 'metric-slow', { data: big });
    }
    await eventually(() => t.server.hub.subscriberCount('metric-slow') === 0, 5000, 'the cut');
    const after = await scrape(t.base);
    assert.equal(
      v(after, 'sse_slow_consumer_disconnects_total') -
        v(before, 'sse_slow_consumer_disconnects_total'),
      1,
    );
    stalled.destroy();
  });

  test('no label value carries a channel name, an id or an address', async () => {
    const text = await (await fetch(`${t.base}/metrics`)).text();
    for (const secret of ['metric-a', 'metric-b', 'metric-c', 'metric-slow', '127.0.0.1']) {
      assert.ok(!text.includes(secret), secret);
    }
    const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]));
    for (const route of routes) {
      assert.ok(
        [
          '/sse/test',
          CHANNEL,
          '/channels/:channel/events',
          '/metrics',
          '/healthz',
          '/readyz',
          'unmatched',
        ].includes(route!),
        route,
      );
    }
  });

  test('promtool check metrics passes with no errors or lint warnings', (ctx) => {
    const missing = missingTool('promtool');
    if (missing) return ctx.skip(missing);
    return fetch(`${t.base}/metrics`)
      .then((r) => r.text())
      .then((text) => {
        const { status, output } = promtoolCheck(text);
        assert.equal(output, '');
        assert.equal(status, 0);
      });
  });
});

describe('metrics.port', () => {
  test('a separate metrics listener serves /metrics and nothing else', async () => {
    const { freePort } = await import('../helpers/prometheus.ts');
    const port = await freePort();
    const t = await startServer({ metrics: { port } });
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^# TYPE sse_events_sent_total counter$/m);
      assert.equal((await fetch(`http://127.0.0.1:${port}/sse/test`)).status, 404);
    } finally {
      await t.close();
    }
  });
});

describe('a real Prometheus scrapes the server', () => {
  test('up == 1 and a non-zero sse_events_sent_total', async (ctx) => {
    const missing = missingTool('prometheus');
    if (missing) return ctx.skip(missing);
    const t = await startServer();
    const prom = await startPrometheus([`127.0.0.1:${t.port}`]);
    try {
      const demo = await fetch(`${t.base}/sse/test?interval_ms=0`);
      await demo.text();
      let up = '';
      let sent = 0;
      await eventually(
        async () => {
          const u = await prom.query('up{job="http-sse"}').catch(() => []);
          up = u[0]?.value[1] ?? '';
          const s = await prom.query('sum(sse_events_sent_total)').catch(() => []);
          sent = Number(s[0]?.value[1] ?? 0);
          return up === '1' && sent > 0;
        },
        45_000,
        'Prometheus to scrape the server',
      );
      assert.equal(up, '1');
      assert.ok(sent >= 10);
    } finally {
      await prom.stop();
      await t.close();
    }
  });
});
