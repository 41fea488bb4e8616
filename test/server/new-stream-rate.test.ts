// limits.maxNewStreamsPerSecond: a token bucket over new streams. Within the bucket every stream
// opens; beyond it, 503 new_stream_rate with Retry-After: 1 (an EventSource: the overloaded notice
// with a retry: of 0.5-1.5 s), so a reconnect storm comes in at the rate.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NewStreamRate } from '../../services/server/src/sse/new-stream-rate.ts';
import { metricValue } from '../helpers/metrics-text.ts';
import { eventually, openStreams, startServer } from '../helpers/server.ts';

describe('NewStreamRate (mock clock)', () => {
  test('0 is off: every stream is admitted', () => {
    const rate = new NewStreamRate(0, () => 0);
    for (let i = 0; i < 10_000; i++) assert.equal(rate.take(), true);
  });

  test('a second worth at once, then the rate', () => {
    let now = 0;
    const rate = new NewStreamRate(100, () => now);
    let admitted = 0;
    for (let i = 0; i < 1000; i++) if (rate.take()) admitted++;
    assert.equal(admitted, 100, 'the bucket holds one second worth');
    now = 50; // 5 tokens back
    admitted = 0;
    for (let i = 0; i < 20; i++) if (rate.take()) admitted++;
    assert.equal(admitted, 5);
    now = 10_000; // long quiet: the bucket is full again, and no fuller
    admitted = 0;
    for (let i = 0; i < 150; i++) if (rate.take()) admitted++;
    assert.equal(admitted, 100);
  });
});

describe('limits.maxNewStreamsPerSecond on a server', () => {
  test('a burst beyond the rate: the excess gets 503 new_stream_rate with Retry-After, an EventSource the overloaded notice; counted', async () => {
    // 1 a second: the first stream takes the one token, and the next second holds at most one
    // more, so what follows within it is refused however slow the machine.
    const t = await startServer({ limits: { maxNewStreamsPerSecond: 1 } });
    const open: Response[] = [];
    try {
      const first = await fetch(`${t.base}/sse/channels/storm`, {
        headers: { Accept: 'application/json' },
      });
      assert.equal(first.status, 200);
      open.push(first);
      // An EventSource gets a 200 stream with a retry: and the overloaded notice, then the end.
      const notice = await fetch(`${t.base}/sse/channels/storm`, {
        headers: { Accept: 'text/event-stream' },
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(notice.status, 200);
      const text = await notice.text();
      assert.match(text, /^retry: \d+$/m);
      assert.match(text, /^event: overloaded$/m);
      assert.match(text, /"error":"new_stream_rate"/);
      const answers = await Promise.all(
        Array.from({ length: 30 }, () =>
          fetch(`${t.base}/sse/channels/storm`, { headers: { Accept: 'application/json' } }),
        ),
      );
      for (const r of answers) if (r.status === 200) open.push(r);
      const refused = answers.filter((r) => r.status === 503);
      assert.equal(refused.length + open.length - 1, 30, 'every answer is 200 or 503');
      assert.ok(refused.length >= 28, `refused ${refused.length} of 30`);
      for (const r of refused) {
        const body = (await r.json()) as { error: string };
        assert.equal(body.error, 'new_stream_rate');
        assert.equal(r.headers.get('retry-after'), '1');
      }
      assert.equal(
        await metricValue(t.base, 'sse_connections_rejected_total{reason="new_stream_rate"}'),
        refused.length + 1,
      );
      for (const r of open) await r.body?.cancel();
      await eventually(() => openStreams(t.server) === 0, 5000, 'streams to close');
    } finally {
      await t.close();
    }
  });
});
