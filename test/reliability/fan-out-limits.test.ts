// Fan-out under hostile or heavy load (docs/RELIABILITY.md): never-reading subscribers are cut
// while a reading one gets every event; past maxConnections new streams get 503 + Retry-After
// while the open ones keep flowing.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { describe, test } from 'node:test';
import { openRaw, statusOf } from '../helpers/raw-socket.ts';
import {
  eventually,
  openStreams,
  publish,
  Subscriber,
  startServer,
  subscribers,
} from '../helpers/server.ts';

/** GETs each path in turn: its status and Retry-After header (the body is discarded). */
async function refusals(base: string, paths: string[]): Promise<[number, string | null][]> {
  const answers: [number, string | null][] = [];
  for (const path of paths) {
    const r = await fetch(`${base}${path}`);
    answers.push([r.status, r.headers.get('retry-after')]);
    await r.body?.cancel();
  }
  return answers;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

describe('never-reading subscribers', () => {
  test('100 are cut as slow consumers while a reading one receives every event in order', async (t) => {
    const s = await startServer({
      limits: { maxBufferedBytes: 65_536, stallTimeoutMs: 2000 },
      heartbeatMs: 3_600_000,
    });
    const stuck: net.Socket[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const { socket, head } = await openRaw(
          s.port,
          'GET /sse/channels/fan HTTP/1.1\r\nHost: x\r\n\r\n',
        );
        assert.equal(statusOf(head), 200);
        socket.pause();
        socket.on('error', () => {});
        stuck.push(socket);
      }
      const reader = new Subscriber(`${s.base}/sse/channels/fan`);
      await reader.opened;
      await eventually(() => subscribers(s.server, 'fan') === 101, 5000, '101 subscribers');
      const EVENTS = 400;
      const payload = 'x'.repeat(16 * 1024);
      // Publish time (before the request) and arrival time of every event, for the delay.
      const sentAt: number[] = [];
      const arrivedAt: number[] = [];
      const push = reader.events.push.bind(reader.events);
      reader.events.push = (...items) => {
        for (const _ of items) arrivedAt.push(performance.now());
        return push(...items);
      };
      for (let i = 0; i < EVENTS; i++) {
        sentAt.push(performance.now());
        const r = await publish(s.base, 'fan', { data: `${i} ${payload}` });
        assert.equal(r.status, 202);
        if (i % 20 === 0) await new Promise((r2) => setTimeout(r2, 10));
      }
      await reader.waitFor(EVENTS, 30_000);
      await eventually(() => openStreams(s.server) === 1, 15_000, 'non-readers cut');
      const latencies = arrivedAt.map((at, i) => at - sentAt[i]!).sort((a, b) => a - b);
      const text = await (await fetch(`${s.base}/metrics`)).text();
      const cut = Number(/sse_slow_consumer_disconnects_total (\d+)/.exec(text)?.[1]);
      t.diagnostic(
        `${EVENTS} events of 16 KB to 101 subscribers; slow consumers cut: ${cut}; still open: ${openStreams(s.server)}`,
      );
      t.diagnostic(
        `reader got ${reader.events.length} events; publish-to-arrival p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
      );
      assert.equal(cut, 100);
      assert.deepEqual(
        reader.events.map((e) => Number(e.data.split(' ')[0])),
        Array.from({ length: EVENTS }, (_, i) => i),
      );
      reader.close();
    } finally {
      for (const socket of stuck) socket.destroy();
      await s.close();
    }
  });
});

describe('limits.maxConnections', () => {
  test('past it: 503 + Retry-After on both routes; open streams keep flowing', async (t) => {
    const s = await startServer({ limits: { maxConnections: 20 } });
    const subs: Subscriber[] = [];
    try {
      for (let i = 0; i < 10; i++) subs.push(new Subscriber(`${s.base}/sse/channels/full`));
      for (let i = 0; i < 10; i++)
        subs.push(new Subscriber(`${s.base}/sse/test?interval_ms=100&count=100`));
      await Promise.all(subs.map((x) => x.opened));
      const refused = await refusals(s.base, [
        '/sse/channels/full',
        '/sse/test',
        '/sse/test?interval_ms=0&count=5000',
      ]);
      for (let i = 0; i < 5; i++)
        assert.equal((await publish(s.base, 'full', { data: `e${i}` })).status, 202);
      const demoBefore = subs.slice(10).map((x) => x.events.length);
      await Promise.all(subs.slice(0, 10).map((x) => x.waitFor(5)));
      await new Promise((r) => setTimeout(r, 500));
      const demoAfter = subs.slice(10).map((x) => x.events.length);
      t.diagnostic(
        `20 open (10 channel, 10 /sse/test); refused: ${JSON.stringify(refused)}; every channel subscriber got the 5 events; demo streams advanced ${demoBefore[0]} -> ${demoAfter[0]} events`,
      );
      for (const [status, retry] of refused) {
        assert.equal(status, 503);
        assert.ok(Number(retry) > 0);
      }
      for (let i = 0; i < 10; i++)
        assert.ok(demoAfter[i]! > demoBefore[i]!, 'demo streams keep flowing');
      assert.equal(openStreams(s.server), 20);
    } finally {
      for (const x of subs) x.close();
      await s.close();
    }
  });
});

describe('limits.maxConnectionsPerIp', () => {
  test('counts /sse/test streams too: 429 + Retry-After past it', async (t) => {
    const s = await startServer({ limits: { maxConnectionsPerIp: 2 } });
    const subs = [
      new Subscriber(`${s.base}/sse/test?interval_ms=1000&count=5`),
      new Subscriber(`${s.base}/sse/channels/ip`),
    ];
    try {
      await Promise.all(subs.map((x) => x.opened));
      const answers = await refusals(s.base, [
        '/sse/test?interval_ms=0&count=3',
        '/sse/test?interval_ms=0&count=50000',
        '/sse/channels/ip',
      ]);
      t.diagnostic(`2 streams open from 127.0.0.1; then: ${JSON.stringify(answers)}`);
      for (const [status, retry] of answers) {
        assert.equal(status, 429);
        assert.ok(Number(retry) > 0);
      }
    } finally {
      for (const x of subs) x.close();
      await s.close();
    }
  });
});
