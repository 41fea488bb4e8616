// The client CLI behind a TCP proxy that cuts every connection each second (docs/RELIABILITY.md):
// with --reconnect it resumes by Last-Event-ID and prints every event once, in order.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { runClient } from '../helpers/client-process.ts';
import { eventually, publish, startServer, subscribers } from '../helpers/server.ts';

/** Forwards 127.0.0.1:<port> to the target and destroys every open connection each `everyMs`. */
async function cuttingProxy(target: number, everyMs: number) {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let cuts = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const timer = setInterval(() => {
    for (const [a, b] of pairs) {
      cuts++;
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  }, everyMs);
  return {
    port: (server.address() as net.AddressInfo).port,
    cuts: () => cuts,
    close() {
      clearInterval(timer);
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      server.close();
    },
  };
}

describe('client under a proxy that cuts every connection each second', () => {
  test('every event once, in order', async (t) => {
    const s = await startServer({ retryMs: 100 });
    const proxy = await cuttingProxy(s.port, 1000);
    const EVENTS = 120;
    try {
      // The client starts after a known event, so that even its first connection can resume
      // (without any id, events published while it is cut before its first event are not its).
      const start = await publish(s.base, 'px', { data: 'start' });
      const client = runClient(
        [
          '--url',
          `http://127.0.0.1:${proxy.port}/sse/channels/px`,
          '--reconnect',
          '--json',
          '--last-event-id',
          start.body.ids![0]!,
          '--max-events',
          String(EVENTS),
        ],
        {},
        60_000,
      );
      await eventually(() => subscribers(s.server, 'px') > 0, 10_000, 'client subscribed');
      for (let i = 0; i < EVENTS; i++) {
        assert.equal((await publish(s.base, 'px', { data: `e${i}` })).status, 202);
        await new Promise((r) => setTimeout(r, 50));
      }
      const { code, stdout, stderr } = await client;
      const got = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { data: string }).data);
      t.diagnostic(
        `${EVENTS} events published over ~${(EVENTS * 0.05).toFixed(0)} s; the proxy cut ${proxy.cuts()} connections; client exit ${code}, printed ${got.length} events, ${new Set(got).size} distinct`,
      );
      assert.equal(code, 0, stderr);
      assert.deepEqual(
        got,
        Array.from({ length: EVENTS }, (_, i) => `e${i}`),
      );
    } finally {
      proxy.close();
      await s.close();
    }
  });
});
