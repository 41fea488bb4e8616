// GET /metrics: every sse_* metric moves as it should (streams, publishes, replay, heartbeats,
// rejections, slow consumers), hot-path counting is batched, label values stay bounded, the
// exposition passes promtool, and a real Prometheus scrapes it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AUTH_FAILURE_REASONS } from '../../services/server/src/metrics.ts';
import { CLOSE_REASONS } from '../../services/server/src/stream-routes.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { ROOT } from '../helpers/process.ts';
import { missingTool, promtoolCheck, startPrometheus } from '../helpers/prometheus.ts';
import {
  eventually,
  openStreams,
  publish,
  Subscriber,
  startServer,
  subscribers,
  type TestServer,
} from '../helpers/server.ts';

const CHANNEL = '/sse/channels/:channel';
const PUBLISH = '/channels/:channel/events';

/** Every server metric the issue names, with its type. */
const SERVER_METRICS: readonly [string, 'counter' | 'gauge' | 'histogram'][] = [
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
  ['sse_stream_ends_total', 'counter'],
  ['sse_auth_failures_total', 'counter'],
  ['http_request_duration_seconds', 'histogram'],
];

/** The client's metrics (services/client/src/metrics.ts), documented next to the server's. */
const CLIENT_METRICS = [
  'sse_client_events_received_total',
  'sse_client_reconnects_total',
  'sse_client_connection_errors_total',
  'sse_client_connected',
  'sse_client_event_lag_seconds',
];

/** The three example queries of the documentation, run against a real Prometheus below. */
const PROMQL = {
  eventsPerSecond: 'sum(rate(sse_events_sent_total[1m]))',
  p99Fanout: 'histogram_quantile(0.99, sum by (le) (rate(sse_fanout_duration_seconds_bucket[5m])))',
  activeStreams: 'sum by (route) (sse_connections_active)',
};

async function exposition(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Parses the text exposition into `name{labels}` -> value. */
async function scrape(base: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await exposition(base)).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const v = (m: Map<string, number>, key: string) => m.get(key) ?? 0;
const delta = (a: Map<string, number>, b: Map<string, number>, key: string) =>
  v(b, key) - v(a, key);

/** A subscriber that sends its request and then never reads: the server's buffer fills up. */
function stalledSubscriber(port: number, path: string): net.Socket {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  socket.pause();
  return socket;
}

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
    assert.equal(res.headers.get('content-type'), t.server.metrics.registry.contentType);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const [name, type] of SERVER_METRICS) {
      assert.match(text, new RegExp(`^# HELP ${name} \\S.+$`, 'm'), `HELP for ${name}`);
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `TYPE for ${name}`);
    }
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^process_resident_memory_bytes /m);
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    // Counters with a bounded label set start at 0 for every value.
    for (const route of ['/sse/test', CHANNEL]) {
      assert.match(text, new RegExp(`^sse_connections_active\\{route="${route}"\\} 0$`, 'm'));
      assert.match(text, new RegExp(`^sse_events_sent_total\\{route="${route}"\\} 0$`, 'm'));
    }
    for (const reason of [
      'max_connections',
      'new_stream_rate',
      'per_ip_limit',
      'unauthorized',
      'bad_request',
    ]) {
      assert.match(
        text,
        new RegExp(`^sse_connections_rejected_total\\{reason="${reason}"\\} 0$`, 'm'),
      );
    }
    // Fan-out buckets: sub-millisecond to seconds.
    assert.match(text, /^sse_fanout_duration_seconds_bucket\{le="0\.0001"\} /m);
    assert.match(text, /^sse_fanout_duration_seconds_bucket\{le="0\.001"\} /m);
    assert.match(text, /^sse_fanout_duration_seconds_bucket\{le="1"\} /m);
    assert.match(text, /^sse_fanout_duration_seconds_bucket\{le="5"\} /m);
  });

  test('opening and closing streams moves the active gauge, the totals and the durations', async () => {
    const before = await scrape(t.base);
    const subs = [
      new Subscriber(`${t.base}/sse/channels/metric-a?access_token=sub`),
      new Subscriber(`${t.base}/sse/test?count=100&interval_ms=1000`),
    ];
    await Promise.all(subs.map((s) => s.opened));
    const open = await scrape(t.base);
    assert.equal(v(open, `sse_connections_active{route="${CHANNEL}"}`), 1);
    assert.equal(v(open, 'sse_connections_active{route="/sse/test"}'), 1);
    assert.equal(delta(before, open, `sse_connections_total{route="${CHANNEL}"}`), 1);
    assert.equal(delta(before, open, 'sse_connections_total{route="/sse/test"}'), 1);
    // Nothing has closed yet.
    for (const route of ['/sse/test', CHANNEL]) {
      assert.equal(
        delta(before, open, `sse_connection_duration_seconds_count{route="${route}"}`),
        0,
      );
    }
    for (const s of subs) s.close();
    await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
    const closed = await scrape(t.base);
    assert.equal(v(closed, `sse_connections_active{route="${CHANNEL}"}`), 0);
    assert.equal(v(closed, 'sse_connections_active{route="/sse/test"}'), 0);
    for (const route of ['/sse/test', CHANNEL]) {
      const key = `sse_connection_duration_seconds_count{route="${route}"}`;
      assert.equal(delta(before, closed, key), 1, key);
      const sum = `sse_connection_duration_seconds_sum{route="${route}"}`;
      assert.ok(delta(before, closed, sum) > 0, sum);
    }
  });

  test('publishing counts published events, deliveries, bytes and one fan-out duration per publish', async () => {
    const subs = [1, 2, 3].map(
      () => new Subscriber(`${t.base}/sse/channels/metric-b?access_token=sub`),
    );
    await Promise.all(subs.map((s) => s.opened));
    const before = await scrape(t.base);
    const r = await publish(t.base, 'metric-b', [{ data: 'one' }, { data: 'two' }]);
    assert.equal(r.status, 202);
    assert.equal(r.body.subscribers, 3);
    await Promise.all(subs.map((s) => s.waitFor(2)));
    const after = await scrape(t.base);
    assert.equal(delta(before, after, 'sse_events_published_total'), 2);
    assert.equal(delta(before, after, `sse_events_sent_total{route="${CHANNEL}"}`), 6);
    assert.equal(delta(before, after, 'sse_events_sent_total{route="/sse/test"}'), 0);
    const eventBytes = `data: one\nid: ${r.body.ids![0]}\n\ndata: two\nid: ${r.body.ids![1]}\n\n`
      .length;
    // At least the events (heartbeats may add to it on this server: see the quiet server below).
    assert.ok(delta(before, after, 'sse_bytes_sent_total') >= 3 * eventBytes);
    assert.equal(delta(before, after, 'sse_fanout_duration_seconds_count'), 1);
    assert.ok(delta(before, after, 'sse_fanout_duration_seconds_sum') > 0);
    const key = `http_request_duration_seconds_count{method="POST",route="${PUBLISH}",status_code="202"}`;
    assert.equal(delta(before, after, key), 1);
    // Publishing to a channel nobody listens to is still a publish with a fan-out, and no delivery.
    const lonely = await publish(t.base, 'metric-nobody', { data: 'x' });
    assert.equal(lonely.body.subscribers, 0);
    const later = await scrape(t.base);
    assert.equal(delta(after, later, 'sse_events_published_total'), 1);
    assert.equal(delta(after, later, 'sse_fanout_duration_seconds_count'), 1);
    assert.equal(delta(after, later, `sse_events_sent_total{route="${CHANNEL}"}`), 0);
    for (const s of subs) s.close();
    await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
  });

  test('replayed events count as replayed and as sent; heartbeats and the demo route are counted', async () => {
    const r = await publish(t.base, 'metric-c', [{ data: 'a' }, { data: 'b' }, { data: 'c' }]);
    const before = await scrape(t.base);
    const sub = new Subscriber(`${t.base}/sse/channels/metric-c?access_token=sub`, {
      'Last-Event-ID': String(r.body.ids![0]),
    });
    await sub.waitFor(2);
    const replayed = await scrape(t.base);
    assert.equal(delta(before, replayed, 'sse_replayed_events_total'), 2);
    assert.equal(delta(before, replayed, `sse_events_sent_total{route="${CHANNEL}"}`), 2);
    assert.equal(delta(before, replayed, 'sse_events_published_total'), 0);
    await eventually(() => sub.comments.length > 0, 5000, 'a heartbeat');
    const beat = await scrape(t.base);
    assert.ok(delta(replayed, beat, 'sse_heartbeats_sent_total') >= 1);
    assert.ok(delta(replayed, beat, 'sse_bytes_sent_total') >= ': ping\n\n'.length);
    sub.close();
    await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
    const demo = await fetch(`${t.base}/sse/test?interval_ms=0&count=5`);
    await demo.text();
    const paced = new Subscriber(`${t.base}/sse/test?interval_ms=10&count=3`);
    await paced.waitFor(3);
    await paced.closed;
    const after = await scrape(t.base);
    assert.equal(delta(beat, after, 'sse_events_sent_total{route="/sse/test"}'), 8);
    assert.equal(delta(beat, after, 'sse_connections_total{route="/sse/test"}'), 2);
    assert.equal(delta(beat, after, 'sse_connection_duration_seconds_count{route="/sse/test"}'), 2);
    assert.equal(delta(beat, after, 'sse_replayed_events_total'), 0);
  });

  test('rejections are counted by reason', async () => {
    const before = await scrape(t.base);
    // unauthorized: no token, a wrong token.
    assert.equal((await fetch(`${t.base}/sse/channels/metric-d`)).status, 401);
    assert.equal((await fetch(`${t.base}/sse/channels/metric-d?access_token=nope`)).status, 401);
    // bad_request: a bad parameter, a bad channel name, a bad Last-Event-ID on the example stream
    // (a channel takes any Last-Event-ID: one it cannot place gets a reset event).
    assert.equal((await fetch(`${t.base}/sse/test?count=0`)).status, 400);
    assert.equal((await fetch(`${t.base}/sse/channels/bad%20name?access_token=sub`)).status, 400);
    const badId = await fetch(`${t.base}/sse/test`, {
      headers: { 'Last-Event-ID': 'not-a-number' },
    });
    assert.equal(badId.status, 400);
    // max_connections (4).
    const held = [1, 2, 3, 4].map(() => new Subscriber(`${t.base}/sse/test?count=100`));
    await Promise.all(held.map((s) => s.opened));
    assert.equal((await fetch(`${t.base}/sse/test`)).status, 503);
    for (const s of held) s.close();
    const after = await scrape(t.base);
    const expected = { unauthorized: 2, bad_request: 3, max_connections: 1, per_ip_limit: 0 };
    for (const [reason, n] of Object.entries(expected)) {
      assert.equal(
        delta(before, after, `sse_connections_rejected_total{reason="${reason}"}`),
        n,
        reason,
      );
    }
    // A refused request never counts as an opened stream.
    assert.equal(delta(before, after, `sse_connections_total{route="${CHANNEL}"}`), 0);
    assert.equal(delta(before, after, 'sse_connections_total{route="/sse/test"}'), 4);
    await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
  });

  test('a slow consumer cut is counted once, and its stream leaves the gauge', async () => {
    const before = await scrape(t.base);
    const stalled = stalledSubscriber(t.port, '/sse/channels/metric-slow?access_token=sub');
    try {
      await eventually(() => subscribers(t.server, 'metric-slow') === 1, 5000, 'subscriber');
      const big = 'y'.repeat(32 * 1024);
      for (let i = 0; i < 400 && subscribers(t.server, 'metric-slow') > 0; i++) {
        await publish(t.base, 'metric-slow', { data: big });
      }
      await eventually(() => subscribers(t.server, 'metric-slow') === 0, 5000, 'the cut');
      await eventually(() => openStreams(t.server) === 0, 5000, 'the stream to close');
      const after = await scrape(t.base);
      assert.equal(delta(before, after, 'sse_slow_consumer_disconnects_total'), 1);
      assert.equal(v(after, `sse_connections_active{route="${CHANNEL}"}`), 0);
      assert.equal(
        delta(before, after, `sse_connection_duration_seconds_count{route="${CHANNEL}"}`),
        1,
      );
    } finally {
      stalled.destroy();
    }
  });

  test('http_request_duration_seconds labels non-streaming requests with route patterns', async () => {
    const before = await scrape(t.base);
    assert.equal((await fetch(`${t.base}/healthz`)).status, 200);
    assert.equal((await fetch(`${t.base}/readyz`)).status, 200);
    await exposition(t.base);
    assert.equal((await publish(t.base, 'metric-e', { data: 'x' })).status, 202);
    assert.equal((await publish(t.base, 'metric-e', { nodata: 1 })).status, 400);
    assert.equal((await publish(t.base, 'metric-e', '{not json')).status, 400);
    assert.equal((await fetch(`${t.base}/channels/metric-e/events`)).status, 405);
    assert.equal((await fetch(`${t.base}/no-such-path/metric-e`)).status, 404);
    const after = await scrape(t.base);
    const expected: [string, string, string][] = [
      ['GET', '/healthz', '200'],
      ['GET', '/readyz', '200'],
      ['GET', '/metrics', '200'],
      ['POST', PUBLISH, '202'],
      ['POST', PUBLISH, '400'],
      ['GET', PUBLISH, '405'],
      ['GET', 'unmatched', '404'],
    ];
    for (const [method, route, status] of expected) {
      const key = `http_request_duration_seconds_count{method="${method}",route="${route}",status_code="${status}"}`;
      // Two 400 publishes; two scrapes (the `before` one is observed once its response finished).
      const twice = (method === 'POST' && status === '400') || route === '/metrics';
      assert.equal(delta(before, after, key), twice ? 2 : 1, key);
      const le = `http_request_duration_seconds_bucket{le="+Inf",method="${method}",route="${route}",status_code="${status}"}`;
      assert.equal(v(after, le), v(after, key), le);
    }
    // Streams are not HTTP request metrics.
    for (const key of after.keys()) {
      if (key.startsWith('http_request_duration_seconds')) assert.doesNotMatch(key, /\/sse\//);
    }
  });

  test('no label value carries a channel name, an event id or an address', async () => {
    const text = await exposition(t.base);
    for (const secret of [
      'metric-a',
      'metric-b',
      'metric-c',
      'metric-d',
      'metric-e',
      'metric-slow',
      'metric-nobody',
      'bad name',
      'no-such-path',
      '127.0.0.1',
      'sub', // the subscribe token
    ]) {
      const values = [...text.matchAll(/="([^"]*)"/g)].map((m) => m[1]!);
      assert.ok(!values.some((x) => x.includes(secret)), `a label value holds ${secret}`);
    }
    const allowed: Record<string, string[]> = {
      route: [
        ...['/sse/test', CHANNEL, PUBLISH, '/metrics', '/healthz', '/readyz', 'unmatched'],
        '/sse/streams', // the several-channel route (issue 22)
      ],
      reason: [
        ...['max_connections', 'per_ip_limit', 'unauthorized', 'bad_request'],
        'new_stream_rate', // limits.maxNewStreamsPerSecond (issue 24)
        // sse_stream_ends_total and sse_auth_failures_total: fixed lists too.
        ...CLOSE_REASONS,
        ...AUTH_FAILURE_REASONS,
      ],
      op: ['publish', 'replay', 'join', 'read'],
      method: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      // http_sse_build_info: one fixed pair per process
      version: [
        (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version,
      ],
      node_version: [process.version],
    };
    for (const line of text.split('\n')) {
      if (!line.startsWith('sse_') && !line.startsWith('http_')) continue;
      for (const [, name, value] of line.matchAll(/([a-z_]+)="([^"]*)"/g)) {
        if (name === 'le') assert.match(value!, /^(\+Inf|\d+(\.\d+)?(e[-+]?\d+)?)$/, line);
        else if (name === 'status_code') assert.match(value!, /^[1-5]\d\d$/, line);
        else
          assert.ok(allowed[name!]?.includes(value!), `unexpected ${name}="${value}" in ${line}`);
      }
    }
  });

  test('promtool check metrics passes with no errors or lint warnings', async (ctx) => {
    const missing = missingTool('promtool');
    if (missing) return ctx.skip(missing);
    // By now every labelled child exists (streams, publishes, rejections, HTTP requests).
    const text = await exposition(t.base);
    assert.match(text, /^http_request_duration_seconds_bucket\{/m);
    const { status, output } = promtoolCheck(text);
    assert.equal(output, '');
    assert.equal(status, 0);
  });
});

describe('exact accounting on a quiet server (no heartbeats)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ heartbeatMs: 3_600_000, retryMs: 1500 });
  });
  after(() => t.close());

  test('sse_bytes_sent_total counts exactly the SSE bytes: retry lines, replay and events', async () => {
    const before = await scrape(t.base);
    const subs = [1, 2].map(() => new Subscriber(`${t.base}/sse/channels/quiet-a`));
    await Promise.all(subs.map((s) => s.opened));
    const r = await publish(t.base, 'quiet-a', [{ event: 'tick', data: 'x\ny' }, { data: '42' }]);
    await Promise.all(subs.map((s) => s.waitFor(2)));
    const replay = new Subscriber(`${t.base}/sse/channels/quiet-a`, {
      'Last-Event-ID': r.body.ids![0]!,
    });
    await replay.waitFor(1);
    const demo = await fetch(`${t.base}/sse/test?interval_ms=0&count=2`);
    const demoBody = await demo.text();
    const after = await scrape(t.base);
    const [id1, id2] = r.body.ids!;
    const retry = 'retry: 1500\n\n';
    const events = `event: tick\ndata: x\ndata: y\nid: ${id1}\n\ndata: 42\nid: ${id2}\n\n`;
    const replayed = `data: 42\nid: ${id2}\n\n`;
    const expected =
      3 * retry.length + 2 * Buffer.byteLength(events) + replayed.length + demoBody.length;
    assert.equal(delta(before, after, 'sse_bytes_sent_total'), expected);
    assert.equal(delta(before, after, `sse_events_sent_total{route="${CHANNEL}"}`), 2 * 2 + 1);
    assert.equal(delta(before, after, 'sse_events_sent_total{route="/sse/test"}'), 2);
    assert.equal(delta(before, after, 'sse_replayed_events_total'), 1);
    assert.equal(delta(before, after, 'sse_heartbeats_sent_total'), 0);
    for (const s of [...subs, replay]) s.close();
    await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
  });

  test('a fan-out to many subscribers moves each hot-path counter with one call', async () => {
    const n = 20;
    const subs = Array.from({ length: n }, () => new Subscriber(`${t.base}/sse/channels/quiet-b`));
    await Promise.all(subs.map((s) => s.opened));
    const m = t.server.metrics;
    const calls: Record<string, number[]> = { eventsSent: [], bytesSent: [], fanout: [] };
    const sent = m.eventsSent[CHANNEL];
    const origSent = sent.inc;
    const origBytes = m.bytesSent.inc;
    const origObserve = m.fanoutDuration.observe;
    sent.inc = function (this: typeof sent, value?: number) {
      calls.eventsSent!.push(value ?? 1);
      return origSent.call(this, value);
    } as typeof sent.inc;
    m.bytesSent.inc = function (this: typeof m.bytesSent, ...args: unknown[]) {
      calls.bytesSent!.push(typeof args[0] === 'number' ? args[0] : 1);
      return (origBytes as (...a: unknown[]) => void).apply(this, args);
    } as typeof m.bytesSent.inc;
    m.fanoutDuration.observe = function (this: typeof m.fanoutDuration, ...args: unknown[]) {
      calls.fanout!.push(1);
      return (origObserve as (...a: unknown[]) => void).apply(this, args);
    } as typeof m.fanoutDuration.observe;
    try {
      const r = await publish(t.base, 'quiet-b', [{ data: 'a' }, { data: 'b' }, { data: 'c' }]);
      assert.equal(r.body.subscribers, n);
      await Promise.all(subs.map((s) => s.waitFor(3)));
    } finally {
      sent.inc = origSent;
      m.bytesSent.inc = origBytes;
      m.fanoutDuration.observe = origObserve;
    }
    assert.deepEqual(calls.eventsSent, [n * 3]);
    assert.equal(calls.bytesSent!.length, 1);
    assert.deepEqual(calls.fanout, [1]);
    for (const s of subs) s.close();
    await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
  });
});

describe('per-address limit', () => {
  test('a stream over limits.maxConnectionsPerIp is refused with 429 and counted as per_ip_limit', async () => {
    const t = await startServer({ limits: { maxConnectionsPerIp: 1, maxConnections: 10 } });
    const first = new Subscriber(`${t.base}/sse/channels/per-ip`);
    try {
      await first.opened;
      const before = await scrape(t.base);
      assert.equal((await fetch(`${t.base}/sse/channels/per-ip`)).status, 429);
      assert.equal((await fetch(`${t.base}/sse/test`)).status, 429);
      const after = await scrape(t.base);
      assert.equal(
        delta(before, after, 'sse_connections_rejected_total{reason="per_ip_limit"}'),
        2,
      );
      assert.equal(
        delta(before, after, 'sse_connections_rejected_total{reason="max_connections"}'),
        0,
      );
      assert.equal(v(after, `sse_connections_active{route="${CHANNEL}"}`), 1);
    } finally {
      first.close();
      await t.close();
    }
  });
});

describe('metrics.port', () => {
  test('a separate metrics listener serves the same exposition and nothing else', async (ctx) => {
    const port = await freePort();
    const t = await startServer({ metrics: { port } });
    try {
      await publish(t.base, 'port-a', { data: 'x' });
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), t.server.metrics.registry.contentType);
      const text = await res.text();
      assert.match(text, /^# TYPE sse_events_sent_total counter$/m);
      assert.match(text, /^sse_events_published_total 1$/m);
      assert.equal((await fetch(`http://127.0.0.1:${port}/sse/test`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 404);
      const missing = missingTool('promtool');
      if (missing) return ctx.diagnostic(`promtool part skipped: ${missing}`);
      const check = promtoolCheck(text);
      assert.equal(check.output, '');
      assert.equal(check.status, 0);
    } finally {
      await t.close();
    }
  });
});

describe('documentation', () => {
  test('docs/METRICS.md (or the README) lists every metric and the example queries', () => {
    const docs = ['README.md', 'docs/METRICS.md']
      .map((f) => {
        try {
          return readFileSync(`${ROOT}${f}`, 'utf8');
        } catch {
          return '';
        }
      })
      .join('\n');
    for (const [name] of SERVER_METRICS) assert.ok(docs.includes(`\`${name}\``), name);
    for (const name of CLIENT_METRICS) assert.ok(docs.includes(`\`${name}\``), name);
    for (const q of Object.values(PROMQL)) assert.ok(docs.includes(q), q);
  });
});

describe('a real Prometheus scrapes the server', () => {
  test('up == 1, a non-zero sse_events_sent_total, and the documented queries answer', async (ctx) => {
    const missing = missingTool('prometheus');
    if (missing) return ctx.skip(missing);
    const t = await startServer();
    let prom: Awaited<ReturnType<typeof startPrometheus>> | null = null;
    const sub = new Subscriber(`${t.base}/sse/channels/prom-a`);
    let publishing = true;
    const traffic = (async () => {
      // Keep events flowing so that rate() and histogram_quantile() have increases to work with.
      while (publishing) {
        await publish(t.base, 'prom-a', { data: 'tick' }).catch(() => {});
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await sub.opened;
      const demo = await fetch(`${t.base}/sse/test?interval_ms=0`);
      await demo.text();
      prom = await startPrometheus([`127.0.0.1:${t.port}`]);
      const p = prom;
      const last: Record<string, string> = {};
      const one = async (name: string, expr: string) => {
        const r = await p.query(expr);
        last[name] = JSON.stringify(r);
        return r;
      };
      try {
        await eventually(
          async () => {
            const up = await one('up', 'up{job="http-sse"}');
            const sent = await one('sent', 'sum(sse_events_sent_total{job="http-sse"})');
            const rate = await one('rate', PROMQL.eventsPerSecond);
            const p99 = await one('p99', PROMQL.p99Fanout);
            return (
              up[0]?.value[1] === '1' &&
              Number(sent[0]?.value[1] ?? 0) > 0 &&
              Number(rate[0]?.value[1] ?? 0) > 0 &&
              Number.isFinite(Number(p99[0]?.value[1]))
            );
          },
          45_000,
          'Prometheus to scrape the server',
        );
      } catch (err) {
        throw new Error(
          `${(err as Error).message}; last answers ${JSON.stringify(last)}; prometheus: ${p.log()}`,
        );
      }
      const sent = await p.query('sum(sse_events_sent_total)');
      assert.ok(Number(sent[0]!.value[1]) >= 10); // at least the demo stream's ten events
      const p99 = Number((await p.query(PROMQL.p99Fanout))[0]!.value[1]);
      assert.ok(p99 > 0 && p99 <= 5, `p99 fan-out ${p99}`);
      const active = await p.query(PROMQL.activeStreams);
      const byRoute = Object.fromEntries(active.map((s) => [s.metric.route, s.value[1]]));
      assert.deepEqual(byRoute, { '/sse/test': '0', [CHANNEL]: '1', '/sse/streams': '0' });
    } finally {
      publishing = false;
      await traffic;
      sub.close();
      await prom?.stop();
      await t.close();
    }
  });
});
