// The Redis layouts' small parts, without Redis: the config (exactly one of REDIS_URL,
// REDIS_SENTINELS, REDIS_CLUSTER_NODES, else a start-up error naming the keys), the key names and
// cluster slots, the readers' cursors (gaps, a sequence that started again, confirmation after a
// reconnect), and the cluster doorbell's protocol against a scripted RESP peer (answers in order,
// an unasked sunsubscribe, MOVED, a closed connection).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { redisTarget } from '../../services/server/src/broker/redis-connection.ts';
import { Cursors, type StreamEntry } from '../../services/server/src/broker/redis-cursors.ts';
import { keySlot, RedisKeys } from '../../services/server/src/broker/redis-keys.ts';
import { ShardNotifier } from '../../services/server/src/broker/redis-shard-notifier.ts';
import { loadServerConfig } from '../../services/server/src/config.ts';
import { runNode } from '../helpers/process.ts';

const redis = (env: Record<string, string>) => loadServerConfig({ SSE_BROKER: 'redis', ...env });

describe('Redis layout config', () => {
  test('none set: one server at redis://127.0.0.1:6379; each alone gives its target', () => {
    assert.deepEqual(redisTarget(redis({}).broker), {
      kind: 'single',
      url: 'redis://127.0.0.1:6379',
    });
    assert.deepEqual(redisTarget(redis({ REDIS_URL: 'redis://r:7000' }).broker), {
      kind: 'single',
      url: 'redis://r:7000',
    });
    const sentinel = redis({
      REDIS_SENTINELS: 's1:26379, [::1]:26380',
      REDIS_SENTINEL_PASSWORD: 'sp',
      REDIS_PASSWORD: 'dp',
    });
    assert.deepEqual(redisTarget(sentinel.broker), {
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'mymaster',
      sentinelPassword: 'sp',
      password: 'dp',
    });
    const cluster = redis({ REDIS_CLUSTER_NODES: 'c1:7000,c2:7001' });
    assert.deepEqual(redisTarget(cluster.broker), {
      kind: 'cluster',
      nodes: [
        { host: 'c1', port: 7000 },
        { host: 'c2', port: 7001 },
      ],
      password: '',
    });
    const w = redis({ SSE_REDIS_WAIT_REPLICAS: '2', SSE_REDIS_WAIT_TIMEOUT_MS: '250' });
    assert.equal(w.broker.redis.waitReplicas, 2);
    assert.equal(w.broker.redis.waitTimeoutMs, 250);
    assert.equal(redis({}).broker.redis.waitReplicas, 0);
    assert.equal(redis({}).broker.redis.waitTimeoutMs, 500);
  });

  test('two of them: one error naming the keys; the memory broker does not mind', () => {
    assert.throws(
      () => redis({ REDIS_URL: 'redis://r:1', REDIS_SENTINELS: 's:26379' }),
      /broker\.redis\.sentinels .*: set one of broker\.url \[REDIS_URL\], broker\.redis\.sentinels \[REDIS_SENTINELS\] or broker\.redis\.cluster \[REDIS_CLUSTER_NODES\], not broker\.url \[REDIS_URL\] and broker\.redis\.sentinels \[REDIS_SENTINELS\]/,
    );
    assert.throws(
      () => redis({ REDIS_SENTINELS: 's:26379', REDIS_CLUSTER_NODES: 'c:7000' }),
      /not broker\.redis\.sentinels \[REDIS_SENTINELS\] and broker\.redis\.cluster \[REDIS_CLUSTER_NODES\]/,
    );
    loadServerConfig({ REDIS_URL: 'redis://r:1', REDIS_SENTINELS: 's:26379' });
  });

  test('bad values: host:port, braces in a cluster prefix, a password beside the URL (not shown)', () => {
    assert.throws(() => redis({ REDIS_SENTINELS: 'nohost' }), /expected host:port/);
    assert.throws(() => redis({ REDIS_CLUSTER_NODES: 'c:70000' }), /port above 65535/);
    assert.throws(
      () => redis({ REDIS_CLUSTER_NODES: 'c:7000', SSE_REDIS_KEY_PREFIX: 'a{b}:' }),
      /broker\.keyPrefix .*may not hold \{ or \}/,
    );
    assert.throws(
      () => redis({ REDIS_URL: 'redis://r:1', REDIS_PASSWORD: 'hunter2' }),
      (err: Error) => /broker\.redis\.password = \[redacted\]/.test(err.message),
    );
    assert.throws(() => redis({ SSE_REDIS_WAIT_REPLICAS: '17' }), /waitReplicas/);
  });

  test('the server refuses to start with both, exit 2 and one line naming the keys', async () => {
    const r = await runNode(['services/server/src/main.ts'], {
      SSE_BROKER: 'redis',
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_CLUSTER_NODES: '127.0.0.1:2',
      PORT: '0',
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /REDIS_URL.*REDIS_CLUSTER_NODES/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});

describe('key names and cluster slots', () => {
  test('one server keeps its names; a cluster puts the channel (or {#}) in a hash tag', () => {
    const single = new RedisKeys('sse:', false);
    assert.equal(single.stream('orders'), 'sse:orders');
    assert.equal(single.record('orders', 'k'), 'sse:#idem:orders#k');
    assert.equal(single.registry, 'sse:#channels');
    assert.equal(single.presence('r1'), 'sse:#presence:r1');
    assert.equal(single.channelOf('sse:orders'), 'orders');
    const cluster = new RedisKeys('sse:', true);
    assert.equal(cluster.stream('orders'), 'sse:{orders}');
    assert.equal(cluster.record('orders', 'k'), 'sse:#idem:{orders}#k');
    assert.equal(cluster.registry, 'sse:{#}channels');
    assert.equal(cluster.replicas, 'sse:{#}replicas');
    assert.equal(cluster.presence('r1'), 'sse:{#}presence:r1');
    assert.equal(cluster.channelOf('sse:{orders}'), 'orders');
    assert.equal(cluster.channelOf('sse:orders'), null);
    // The publish script's keys share a slot; the directory's keys share another.
    assert.equal(keySlot(cluster.stream('orders')), keySlot(cluster.record('orders', 'k')));
    assert.equal(keySlot(cluster.registry), keySlot(cluster.presence('any')));
  });

  test('keySlot is Redis Cluster CRC16 (values from CLUSTER KEYSLOT)', () => {
    for (const [key, slot] of [
      ['a', 15495],
      ['b', 3300],
      ['foo', 12182],
      ['sse:{orders}', 105],
      ['{a}b', 15495],
      ['x{}y', 16116],
    ] as const) {
      assert.equal(keySlot(key), slot, key);
    }
  });
});

const entry = (ms: number, n: number | null): StreamEntry => [
  `${ms}-0`,
  n === null ? ['d', 'x'] : ['n', String(n), 'd', 'x'],
];

describe('reader cursors', () => {
  const run = () => {
    const cursors = new Cursors();
    const got: { ids: string[]; gap: string | null }[] = [];
    const deliver = (_ch: string, entries: StreamEntry[], gap: { after: string } | null) =>
      got.push({ ids: entries.map((e) => e[0]), gap: gap?.after ?? null });
    return { cursors, got, deliver };
  };

  test('a continuation, a gap, entries already delivered', () => {
    const { cursors, got, deliver } = run();
    cursors.set('c', { ms: 10, seq: 0 }, 5);
    cursors.advance('c', [entry(11, 6), entry(12, 7)], deliver);
    cursors.advance('c', [entry(12, 7), entry(20, 10)], deliver); // 12 again, then 8 and 9 gone
    assert.deepEqual(got, [
      { ids: ['11-0', '12-0'], gap: null },
      { ids: ['20-0'], gap: '12-0' },
    ]);
  });

  test('a sequence that started again: no gap while in contact, a gap after a loss of contact unless confirmed', () => {
    const { cursors, got, deliver } = run();
    cursors.set('c', { ms: 10, seq: 0 }, 5);
    cursors.advance('c', [entry(11, 1)], deliver); // the stream expired and was made anew
    assert.equal(got.at(-1)!.gap, null);
    cursors.epoch++; // a reconnect (a failover)
    cursors.advance('c', [entry(12, 1)], deliver); // the new master's stream went back
    assert.equal(got.at(-1)!.gap, '11-0');
    cursors.epoch++;
    // Confirmed: the stream still ends at the cursor after the reconnect.
    cursors.confirm('c', ['last-generated-id', '12-0', 'entries-added', 1]);
    cursors.advance('c', [entry(13, 1)], deliver);
    assert.equal(got.at(-1)!.gap, null);
    cursors.epoch++;
    cursors.confirm('c', ['last-generated-id', '14-0', 'entries-added', 2]); // not where it stopped
    cursors.advance('c', [entry(15, 1)], deliver);
    assert.equal(got.at(-1)!.gap, '13-0');
  });
});

/** A scripted RESP peer: records what it is sent, answers with `reply(command)`. */
async function respPeer(reply: (args: string[], socket: net.Socket) => string | null) {
  const seen: string[][] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString();
      // Commands arrive as *N\r\n$len\r\narg\r\n...: good enough for one-word arguments.
      for (;;) {
        const m = /^\*(\d+)\r\n/.exec(buf);
        if (!m) return;
        const parts = buf.slice(m[0].length).split('\r\n');
        const n = Number(m[1]);
        if (parts.length < 2 * n) return;
        const args = Array.from({ length: n }, (_, i) => parts[2 * i + 1]!);
        buf = parts.slice(2 * n).join('\r\n');
        seen.push(args);
        const out = reply(args, socket);
        if (out !== null) socket.write(out);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    node: `127.0.0.1:${port}`,
    seen,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const push = (...items: (string | number)[]) =>
  `*${items.length}\r\n${items.map((i) => (typeof i === 'number' ? `:${i}\r\n` : bulk(i))).join('')}`;

describe('cluster doorbell (sharded Pub/Sub over RESP2)', () => {
  test('subscriptions answered in order, messages, an unasked sunsubscribe, MOVED, a closed connection', async () => {
    let count = 0;
    const peer = await respPeer((args) => {
      if (args[0] === 'AUTH') return '+OK\r\n';
      if (args[0] === 'SSUBSCRIBE' && args[1] === 'moved') return '-MOVED 1 127.0.0.1:7001\r\n';
      if (args[0] === 'SSUBSCRIBE') return push('ssubscribe', args[1]!, ++count);
      if (args[0] === 'SUNSUBSCRIBE') return push('sunsubscribe', args[1]!, --count);
      return null;
    });
    const events: string[] = [];
    const notifier = new ShardNotifier(peer.node, 'secret', {
      message: (key) => events.push(`message ${key}`),
      unsubscribed: (key) => events.push(`unsubscribed ${key}`),
      closed: () => events.push('closed'),
    });
    try {
      await Promise.all([notifier.subscribe('k1'), notifier.subscribe('k2')]);
      assert.deepEqual(peer.seen.slice(0, 3), [
        ['AUTH', 'secret'],
        ['SSUBSCRIBE', 'k1'],
        ['SSUBSCRIBE', 'k2'],
      ]);
      await assert.rejects(notifier.subscribe('moved'), /^Error: MOVED 1 127\.0\.0\.1:7001$/);
      const socket = peer.sockets[0]!;
      // A message split over two writes, then the master dropping k1 by itself.
      const message = push('smessage', 'k2', '1796000000000-0');
      socket.write(message.slice(0, 7));
      socket.write(message.slice(7) + push('sunsubscribe', 'k1', 1));
      notifier.unsubscribe('k2'); // ours, answered in order
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(events, ['message k2', 'unsubscribed k1']);
      assert.deepEqual([...notifier.subscribed], []);
      socket.destroy();
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(events.at(-1), 'closed');
      assert.ok(notifier.closed);
      await assert.rejects(notifier.subscribe('k3'), /closed/);
    } finally {
      notifier.close();
      peer.close();
    }
  });
});
