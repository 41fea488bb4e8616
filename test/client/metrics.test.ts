// The client's Prometheus endpoint: values after a real stream, and `promtool check metrics`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { closeDefaultDispatchers, connectEventStream } from '../../services/client/src/index.ts';
import {
  createClientMetrics,
  publishTimestamp,
  startMetricsServer,
} from '../../services/client/src/metrics.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { spawnClient } from '../helpers/client-process.ts';
import { exampleEvent, SSE_HEADERS, startStub } from '../helpers/stub-server.ts';

after(() => closeDefaultDispatchers());

const promtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} missing in\n${text}`);
  return Number(line.slice(name.length + 1));
}

describe('client metrics', () => {
  test('publishTimestamp reads a numeric ts from JSON data only', () => {
    assert.equal(publishTimestamp('{"ts": 1700000000123.5, "x": 1}'), 1700000000123.5);
    assert.equal(publishTimestamp('{"msg": "hello", "idx": 1}'), undefined);
    assert.equal(publishTimestamp('{"ts": "soon"}'), undefined);
    assert.equal(publishTimestamp('not json "ts"'), undefined);
    assert.equal(publishTimestamp('{"ts": 1'), undefined);
  });

  test('the endpoint exposes the documented metrics with the values of a real stream', async () => {
    const metrics = createClientMetrics();
    const http = await startMetricsServer(metrics.registry, '127.0.0.1', 0);
    const sse = await startStub((_req, res, n) => {
      if (n === 1) {
        res.writeHead(200, SSE_HEADERS);
        const now = performance.timeOrigin + performance.now();
        res.end(`retry: 5\n${exampleEvent(1)}data: {"ts": ${now - 250}}\n\n`);
      } else if (n === 2) res.writeHead(502).end();
    });
    try {
      const handle = connectEventStream(sse.url(), {
        reconnect: true,
        onEvent(e) {
          metrics.eventReceived();
          metrics.observeLag(e.data);
        },
        onOpen: () => metrics.setConnected(true),
        onDisconnect: () => metrics.setConnected(false),
        onError: (err) => metrics.connectionError(err.reason),
        onReconnect: () => metrics.reconnecting(),
      });
      const result = await handle.done;
      assert.equal(result.reason, 'error');

      const res = await fetch(`http://127.0.0.1:${http.port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
      const text = await res.text();
      assert.equal(sample(text, 'sse_client_events_received_total'), 2);
      assert.equal(sample(text, 'sse_client_reconnects_total'), 1);
      assert.equal(sample(text, 'sse_client_connection_errors_total{reason="http_status"}'), 1);
      assert.equal(sample(text, 'sse_client_connection_errors_total{reason="refused"}'), 0);
      assert.equal(sample(text, 'sse_client_connected'), 0);
      assert.equal(sample(text, 'sse_client_event_lag_seconds_count'), 1);
      const lag = sample(text, 'sse_client_event_lag_seconds_sum');
      assert.ok(lag >= 0.25, `lag ${lag}`);
      assert.equal(sample(text, 'sse_client_event_lag_seconds_bucket{le="0.1"}'), 0);
      for (const name of [
        'sse_client_events_received_total',
        'sse_client_reconnects_total',
        'sse_client_connection_errors_total',
        'sse_client_connected',
        'sse_client_event_lag_seconds',
        'process_cpu_seconds_total',
      ]) {
        assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'));
      }
      assert.equal((await fetch(`http://127.0.0.1:${http.port}/other`)).status, 404);
    } finally {
      await sse.close();
      await http.close();
    }
  });

  test('the CLI serves /metrics with sse_client_connected 1 while a stream is open; promtool accepts it', async (t) => {
    const sse = await startStub((_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(exampleEvent(1));
    });
    const port = await freePort();
    const client = spawnClient(['--url', sse.url(), '--metrics-port', String(port)], {
      SSE_CLIENT_METRICS_HOST: '127.0.0.1',
    });
    try {
      await client.waitForLines(1);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.equal(sample(text, 'sse_client_connected'), 1);
      assert.equal(sample(text, 'sse_client_events_received_total'), 1);
      if (!promtool) {
        t.skip('promtool is not installed (apt-get install prometheus): lint not run');
        return;
      }
      const check = promtoolCheck(text);
      assert.equal(check.status, 0, check.output);
      assert.equal(check.output.trim(), '', check.output);
    } finally {
      client.kill('SIGINT');
      assert.equal(await client.exited, 130);
      await sse.close();
    }
  });

  test('a busy metrics port: one line, exit 1', async () => {
    const sse = await startStub((_req, res) => res.writeHead(204).end());
    const metrics = createClientMetrics();
    const taken = await startMetricsServer(metrics.registry, '127.0.0.1', 0);
    try {
      const client = spawnClient(['--url', sse.url(), '--metrics-port', String(taken.port)], {
        SSE_CLIENT_METRICS_HOST: '127.0.0.1',
      });
      assert.equal(await client.exited, 1);
      assert.equal(client.stderr().trimEnd().split('\n').length, 1);
      assert.match(client.stderr(), /metrics/);
    } finally {
      await taken.close();
      await sse.close();
    }
  });
});
