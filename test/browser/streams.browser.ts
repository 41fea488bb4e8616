// One EventSource on ten channels in real Chromium (GET /sse/streams): every event arrives with
// its channel, through a proxy cut and a server restart (Redis broker: the history outlives the
// process) with nothing missed or repeated, and the page's other requests to the origin never
// wait behind it (one connection instead of ten).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../../services/shared/eventually.ts';
import { launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { publish, startServer, subscribers, type TestServer } from '../helpers/server.ts';

const CHANNELS = Array.from({ length: 10 }, (_, i) => `room.${i}`);

/** A TCP proxy to `target` whose connections the test can cut at once. */
async function proxyTo(target: () => number) {
  const pairs = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target(), '127.0.0.1');
    pairs.add(client);
    pairs.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(client);
      pairs.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut() {
      for (const s of pairs) s.destroy();
      pairs.clear();
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

interface Seen {
  channel: string;
  data: string;
}

describe('several channels in one EventSource', { skip: missingRedis() ?? false }, () => {
  let browser: TestBrowser;
  let redis: TestRedis;
  let server: TestServer;
  let port = 0;
  const config = () => ({
    port,
    retryMs: 200,
    shutdownRetryJitterMs: 200,
    broker: { type: 'redis', url: redis.url, keyPrefix: 'browser-streams:' },
  });

  before(async () => {
    browser = await launchBrowser();
    redis = await startRedis();
    server = await startServer(config());
    port = server.port;
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await redis?.stop();
  });

  test('every event with its channel, once, through a cut and a restart; other requests never wait', {
    timeout: 90_000,
  }, async () => {
    const proxy = await proxyTo(() => port);
    const tab = await browser.context.newPage();
    const published = new Map<string, string[]>(CHANNELS.map((c) => [c, []]));
    let n = 0;
    const publishSome = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const channel = CHANNELS[(n * 7) % CHANNELS.length]!;
        const data = `${channel}#${n++}`;
        published.get(channel)!.push(data);
        const r = await publish(server.base, channel, { data });
        assert.equal(r.status, 202);
      }
    };
    const total = () => n;
    try {
      await tab.goto(`${proxy.base}/`);
      await tab.evaluate(
        (url) => {
          const seen: Seen[] = [];
          (window as unknown as { seen: Seen[] }).seen = seen;
          const es = new EventSource(url);
          es.onmessage = (e) => seen.push(JSON.parse(e.data) as Seen);
          (window as unknown as { es: EventSource }).es = es;
        },
        `${proxy.base}/sse/streams?${CHANNELS.map((c) => `channel=${c}`).join('&')}`,
      );
      const seenCount = () =>
        tab.evaluate(() => (window as unknown as { seen: Seen[] }).seen.length);
      await eventually(async () => subscribers(server.server, CHANNELS[0]!) === 1, 10_000, 'open');

      // Other requests to the same origin while the stream is open: all answer.
      const answered = await tab.evaluate(async () => {
        const all = Array.from({ length: 8 }, () => fetch('/healthz').then((r) => r.status));
        return Promise.all(all);
      });
      assert.deepEqual(answered, Array(8).fill(200));

      await publishSome(60);
      await eventually(async () => (await seenCount()) === total(), 15_000, 'the first 60');
      proxy.cut();
      await publishSome(60);
      await eventually(async () => (await seenCount()) === total(), 20_000, 'after the cut');
      await server.close();
      server = await startServer(config());
      await publishSome(60);
      await eventually(async () => (await seenCount()) === total(), 30_000, 'after the restart');

      const seen = await tab.evaluate(() => (window as unknown as { seen: Seen[] }).seen);
      for (const channel of CHANNELS) {
        assert.deepEqual(
          seen.filter((e) => e.channel === channel).map((e) => e.data),
          published.get(channel),
          channel,
        );
      }
    } finally {
      await tab
        .evaluate(() => (window as unknown as { es?: EventSource }).es?.close())
        .catch(() => {});
      await tab.close();
      proxy.close();
    }
  });
});
