// The restart storm at a small point against servers the test starts (in process, restarted on
// the same port): 100 live subscribers, the server restarted, 20 events published to it; every
// subscriber comes back by itself and gets all 20, and the harness's counts match the restarted
// server's own (events sent = events the subscribers got + resets). With the memory broker every
// subscriber is reset (the record died with the server); with Redis none is. A 1000-event replay
// to 60 subscribers: most of them compare it with their worker's shared stream, with the same
// counts. Also the storm bench's flags.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Report } from '../../loadtest/src/report/report.ts';
import {
  type RestartableServer,
  runStormRestart,
} from '../../loadtest/src/scenarios/storm-restart.ts';
import { sample, scrapeMetrics } from '../../loadtest/src/server-metrics.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { runNode } from '../helpers/process.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const TOKEN = 'restart-token';
const N = 100;
const K = 20;

/** An in-process server on a fixed port that `stop` shuts down gracefully and `start` brings back. */
async function restartable(config: Record<string, unknown>) {
  const port = await freePort();
  let current: TestServer | null = null;
  const server: RestartableServer & { current: () => TestServer | null } = {
    base: `http://127.0.0.1:${port}`,
    async start() {
      current = await startServer({
        port,
        publish: { token: TOKEN },
        // Come back within a second, not the defaults' 2-7 s.
        retryMs: 200,
        shutdownRetryJitterMs: 500,
        ...config,
      });
    },
    async stop() {
      await current?.close();
      current = null;
    },
    current: () => current,
  };
  return server;
}

/** The restart storm (n subscribers, k events); the restarted server's own counters, read after it. */
async function storm(
  config: Record<string, unknown>,
  expectResets: boolean,
  { n = N, k = K, eventBytes = 200 } = {},
) {
  const server = await restartable(config);
  await server.start();
  try {
    const report = await runStormRestart({
      server,
      subscribers: n,
      history: k,
      eventBytes,
      workers: 2,
      timeoutS: 60,
      channel: 'restart-test',
      token: TOKEN,
      expectResets,
      log: () => {},
    });
    const metrics = await scrapeMetrics(server.base);
    return {
      report,
      eventsSent: sample(metrics, 'sse_events_sent_total{route="/sse/channels/:channel"}'),
      replayed: sample(metrics, 'sse_replayed_events_total'),
    };
  } finally {
    await server.stop();
  }
}

/** What holds with either broker. */
function everyoneServed(f: Report['figures'], n = N, k = K): void {
  assert.equal(f.subscribers_open, n);
  assert.equal(f.subscribers_live, n);
  assert.equal(f.subscribers_dropped, n);
  assert.equal(f.subscribers_served, n);
  assert.equal(f.subscribers_not_served, 0);
  assert.equal(f.replayed_events, n * k);
  assert.equal(f.replayed_events_expected, n * k);
  for (const name of ['lost', 'duplicated', 'out_of_order', 'corrupted']) {
    assert.equal(f[name], 0, name);
  }
  assert.ok(Number(f.reconnect_attempts) >= n);
  assert.ok(Number(f.first_full_replay_ms) <= Number(f.last_full_replay_ms));
  assert.ok(Number(f.server_listening_ms) <= Number(f.history_published_ms));
  assert.ok(Number(f.full_replay_p99_ms) > 0 && Number(f.reconnect_wait_p99_ms) > 0);
  assert.ok(Number(f.server_rss_peak_bytes) > 0);
  assert.ok(Number(f.harness_subscribers_shared) <= n);
}

describe('load-test harness: restart storm', () => {
  let redis: TestRedis | null = null;
  after(async () => {
    await redis?.stop();
  });

  test('memory broker: every subscriber is reset, then gets all K events', async () => {
    const { report, eventsSent, replayed } = await storm({}, true);
    const f = report.figures;
    everyoneServed(f);
    assert.equal(f.subscribers_reset, N);
    assert.equal(f.subscribers_reset_unknown_id, N);
    // The restarted server sent each subscriber its reset and the K events, replayed or live.
    assert.equal(eventsSent, N * K + N);
    assert.equal(f.server_events_sent, eventsSent);
    assert.equal(f.server_replayed_events, replayed);
    assert.equal(report.warnings.length, 0, report.warnings.join('\n'));
  });

  test('a 1000-event replay: most subscribers compare it with the shared stream, same counts', async () => {
    const n = 60;
    const k = 1000;
    const { report, eventsSent } = await storm({ channels: { historyMaxBytes: 4 << 20 } }, true, {
      n,
      k,
      eventBytes: 1024,
    });
    const f = report.figures;
    everyoneServed(f, n, k);
    assert.equal(f.subscribers_reset, n);
    assert.equal(eventsSent, n * k + n);
    // Each worker's first resumed subscriber founds its stream; the others join it at an event end.
    assert.ok(
      Number(f.harness_subscribers_shared) >= n / 2,
      `shared ${f.harness_subscribers_shared}`,
    );
    assert.equal(report.warnings.length, 0, report.warnings.join('\n'));
  });

  test('Redis broker: the record survives, nobody is reset', {
    skip: missingRedis() ?? false,
  }, async () => {
    redis = await startRedis();
    const { report, eventsSent, replayed } = await storm(
      { broker: { type: 'redis', url: redis.url, keyPrefix: 'restart:' } },
      false,
    );
    const f = report.figures;
    everyoneServed(f);
    assert.equal(f.subscribers_reset, 0);
    assert.equal(eventsSent, N * K);
    assert.equal(f.server_events_sent, eventsSent);
    assert.equal(f.server_replayed_events, replayed);
    assert.equal(report.warnings.length, 0, report.warnings.join('\n'));
  });

  test('--scenario storm --bench: its flags', async () => {
    const cases: [string[], RegExp][] = [
      [['--url', 'http://127.0.0.1:1'], /--url does not go with --scenario storm --bench/],
      [['--rate', '5'], /--rate does not go with --bench/],
      [['--p99-target-ms', '5'], /--p99-target-ms does not go with --scenario storm --bench/],
      [['--receiver', 'raw'], /--receiver does not go with --scenario storm --bench/],
      [['--broker', 'etcd'], /--broker must be memory, redis or both/],
      [['--broker', 'cluster'], /--broker cluster goes with --scenario fanout --bench/],
    ];
    for (const [args, message] of cases) {
      const r = await runNode(
        ['loadtest/src/main.ts', '--scenario', 'storm', '--bench', ...args],
        {},
        30_000,
      );
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr.split('\n')[0]!, message);
    }
    const stream = await runNode(['loadtest/src/main.ts', '--scenario', 'stream', '--bench'], {});
    assert.match(stream.stderr.split('\n')[0]!, /--bench goes with --scenario fanout or storm/);
  });
});
