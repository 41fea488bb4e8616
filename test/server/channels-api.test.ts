// The channel API over real sockets: GET /channels (sorted by name, paged, prefix) and
// GET /channels/:channel (404 for a channel with no subscribers and no history), 400s naming the
// parameter, who may read it (loopback without auth.adminToken, the bearer token with it), the
// sse_channels gauge, and subscribers counted across two replicas on one Redis: a replica killed
// without a goodbye stops counting once its presence expires, one that shuts down at once.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { redisCall } from '../../loadtest/src/redis-ha.ts';
import type { RedisChannelDirectory } from '../../services/server/src/channels/redis-directory.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { spawnServer } from '../helpers/process.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { publish, Subscriber, startServer, type TestServer } from '../helpers/server.ts';

interface Facts {
  name: string;
  subscribers: number;
  lastEventId: string | null;
  historyLength: number;
  lastPublishAt: string | null;
}
interface Page {
  channels: Facts[];
  next: string | null;
}

async function getJson<T>(base: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, { headers });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

/** Every page of GET /channels with the given query, following `next`. */
async function allPages(base: string, query: string, headers: Record<string, string> = {}) {
  const pages: Page[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const sep = query ? '&' : '';
    const more: string = cursor === null ? '' : `${sep}cursor=${encodeURIComponent(cursor)}`;
    const { status, body }: { status: number; body: Page } = await getJson<Page>(
      base,
      `/channels?${query}${more}`,
      headers,
    );
    assert.equal(status, 200, JSON.stringify(body));
    pages.push(body);
    cursor = body.next;
    if (cursor === null) return pages;
  }
  throw new Error('more than 100 pages');
}

/** A GET with a Host header of our choosing (fetch does not let a test set Host). */
function getWithHost(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

describe('the channel API (memory broker)', () => {
  let t: TestServer;
  const subs: Subscriber[] = [];
  const ids = new Map<string, string>();
  before(async () => {
    t = await startServer({ channels: { historySize: 3 } });
    // 12 channels with history (names chosen to sort in a known order), one with 5 events.
    for (const name of ['b', 'a', 'c', 'orders:1', 'orders:2', 'orders:10', 'x.y', 'Z', '0']) {
      const r = await publish(t.base, name, { data: name });
      assert.equal(r.status, 202);
      ids.set(name, r.body.ids![0]!);
    }
    const r = await publish(
      t.base,
      'many',
      [1, 2, 3, 4, 5].map((n) => ({ data: String(n) })),
    );
    ids.set('many', r.body.ids!.at(-1)!);
    // Subscribers: two on 'a', one on 'quiet' (no history: it exists while watched).
    for (const name of ['a', 'a', 'quiet']) {
      const s = new Subscriber(`${t.base}/sse/channels/${name}`);
      subs.push(s);
      await s.opened;
    }
  });
  after(async () => {
    for (const s of subs) s.close();
    await t?.close();
  });

  test('GET /channels lists every channel sorted by name, with its facts', async () => {
    const { status, headers, body } = await getJson<Page>(t.base, '/channels');
    assert.equal(status, 200);
    assert.match(String(headers.get('content-type')), /^application\/json/);
    assert.equal(headers.get('cache-control'), 'no-store');
    assert.deepEqual(
      body.channels.map((c) => c.name),
      ['0', 'Z', 'a', 'b', 'c', 'many', 'orders:1', 'orders:10', 'orders:2', 'quiet', 'x.y'],
    );
    assert.equal(body.next, null);
    const byName = new Map(body.channels.map((c) => [c.name, c]));
    const a = byName.get('a')!;
    assert.deepEqual(Object.keys(a), [
      'name',
      'subscribers',
      'lastEventId',
      'historyLength',
      'lastPublishAt',
    ]);
    assert.equal(a.subscribers, 2);
    assert.equal(a.lastEventId, ids.get('a'));
    assert.equal(a.historyLength, 1);
    assert.equal(a.lastPublishAt, new Date(Number(ids.get('a')!.split('-')[0])).toISOString());
    const many = byName.get('many')!;
    assert.equal(many.historyLength, 3, 'historySize bounds what is held');
    assert.equal(many.lastEventId, ids.get('many'));
    assert.equal(many.subscribers, 0);
    assert.deepEqual(byName.get('quiet'), {
      name: 'quiet',
      subscribers: 1,
      lastEventId: null,
      historyLength: 0,
      lastPublishAt: null,
    });
  });

  test('paging: limit and the next cursor walk every channel once, in order', async () => {
    const pages = await allPages(t.base, 'limit=4');
    assert.deepEqual(
      pages.map((p) => p.channels.length),
      [4, 4, 3],
    );
    assert.equal(pages[0]!.next, 'b');
    const names = pages.flatMap((p) => p.channels.map((c) => c.name));
    assert.deepEqual(names, [...names].sort());
    assert.equal(new Set(names).size, 11);
    // An exact fit ends with next: null (no empty last page).
    const exact = await allPages(t.base, 'limit=11');
    assert.equal(exact.length, 1);
  });

  test('prefix narrows the list, pages included', async () => {
    const { body } = await getJson<Page>(t.base, '/channels?prefix=orders:');
    assert.deepEqual(
      body.channels.map((c) => c.name),
      ['orders:1', 'orders:10', 'orders:2'],
    );
    const pages = await allPages(t.base, 'prefix=orders:&limit=2');
    assert.deepEqual(
      pages.map((p) => p.channels.map((c) => c.name)),
      [['orders:1', 'orders:10'], ['orders:2']],
    );
    const none = await getJson<Page>(t.base, '/channels?prefix=nothing');
    assert.deepEqual(none.body, { channels: [], next: null });
  });

  test('GET /channels/:channel: the same object, or 404 JSON', async () => {
    const list = await getJson<Page>(t.base, '/channels');
    const one = await getJson<Facts>(t.base, '/channels/orders:10');
    assert.equal(one.status, 200);
    assert.deepEqual(
      one.body,
      list.body.channels.find((c) => c.name === 'orders:10'),
    );
    const missing = await getJson<{ error: string; channel: string }>(t.base, '/channels/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'not_found');
    assert.equal(missing.body.channel, 'nope');
  });

  test('a channel whose last subscriber left and that has no history is gone', async () => {
    const s = new Subscriber(`${t.base}/sse/channels/brief`);
    await s.opened;
    assert.equal((await getJson<Facts>(t.base, '/channels/brief')).body.subscribers, 1);
    s.close();
    await s.closed;
    await eventually(
      async () => (await fetch(`${t.base}/channels/brief`)).status === 404,
      10_000,
      'brief to disappear',
    );
  });

  test('bad query values answer 400 naming the parameter', async () => {
    const cases: [string, string][] = [
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['limit=ten', 'limit'],
      ['limit=', 'limit'],
      ['prefix=has%20space', 'prefix'],
      [`prefix=${'p'.repeat(129)}`, 'prefix'],
      ['cursor=bad%2Fname', 'cursor'],
      ['limit=1&limit=2', 'limit'],
      ['offset=3', 'offset'],
    ];
    for (const [query, parameter] of cases) {
      const { status, body } = await getJson<{ error: string; parameter: string }>(
        t.base,
        `/channels?${query}`,
      );
      assert.equal(status, 400, query);
      assert.equal(body.error, 'bad_request', query);
      assert.equal(body.parameter, parameter, query);
    }
    const bad = await getJson<{ parameter: string }>(t.base, '/channels/bad%20name');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.parameter, 'channel');
    const res = await fetch(`${t.base}/channels`, { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
  });

  test('sse_channels counts channels with subscribers or history', async () => {
    const text = await (await fetch(`${t.base}/metrics`)).text();
    assert.match(text, /^# TYPE sse_channels gauge$/m);
    const { body } = await getJson<Page>(t.base, '/channels?limit=500');
    assert.equal(metric(text, 'sse_channels'), body.channels.length);
  });
});

describe('who may read the channel API', () => {
  test('no admin token: loopback clients only; a forged X-Forwarded-For changes nothing', async () => {
    const t = await startServer();
    try {
      assert.equal((await fetch(`${t.base}/channels`)).status, 200);
      const forged = await fetch(`${t.base}/channels`, {
        headers: { 'x-forwarded-for': '203.0.113.9' },
      });
      assert.equal(forged.status, 200, 'without trustProxy the header is ignored');
      // DNS rebinding: a loopback peer with a foreign Host is refused.
      assert.equal(await getWithHost(t.port, '/channels', 'evil.example'), 403);
      assert.equal(await getWithHost(t.port, '/channels', `localhost:${t.port}`), 200);
    } finally {
      await t.close();
    }
  });

  test('no admin token behind a trusted proxy: the forwarded client decides (403 JSON)', async () => {
    const t = await startServer({ trustProxy: ['loopback'] });
    try {
      const remote = await fetch(`${t.base}/channels/any`, {
        headers: { 'x-forwarded-for': '203.0.113.9' },
      });
      assert.equal(remote.status, 403);
      const body = (await remote.json()) as { error: string; message: string };
      assert.equal(body.error, 'forbidden');
      assert.match(body.message, /loopback/);
      const local = await fetch(`${t.base}/channels`, {
        headers: { 'x-forwarded-for': '127.0.0.1' },
      });
      assert.equal(local.status, 200);
    } finally {
      await t.close();
    }
  });

  test('with auth.adminToken: missing or wrong token 401 JSON, the right one 200', async () => {
    const t = await startServer({ auth: { adminToken: 'admin-secret' } });
    try {
      for (const headers of [
        {} as Record<string, string>,
        { authorization: 'Bearer wrong' },
        { authorization: 'Basic YWRtaW4tc2VjcmV0' },
      ]) {
        for (const path of ['/channels', '/channels/any']) {
          const res = await getJson<{ error: string }>(t.base, path, headers);
          assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
          assert.equal(res.body.error, 'unauthorized');
          assert.match(String(res.headers.get('www-authenticate')), /^Bearer /);
        }
      }
      const ok = await getJson<Page>(t.base, '/channels', {
        authorization: 'Bearer admin-secret',
      });
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, { channels: [], next: null });
    } finally {
      await t.close();
    }
  });
});

const skip = missingRedis();

describe('the channel API on Redis, two replicas', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  const TTL = 1000;

  test('subscribers add up across replicas; a killed replica stops counting within the presence TTL', {
    timeout: 60_000,
  }, async () => {
    const prefix = 'c1:';
    const a = await startServer({
      broker: { type: 'redis', url: redis.url, keyPrefix: prefix, redis: { presenceTtlMs: TTL } },
    });
    // The second replica is a process, so that it can die without a goodbye (SIGKILL).
    const b = await spawnServer({
      SSE_BROKER: 'redis',
      REDIS_URL: redis.url,
      SSE_REDIS_KEY_PREFIX: prefix,
      SSE_REDIS_PRESENCE_TTL_MS: String(TTL),
    }).catch(async (err: unknown) => {
      await a.close();
      throw err;
    });
    const subs: Subscriber[] = [];
    try {
      const open = async (base: string, channel: string) => {
        const s = new Subscriber(`${base}/sse/channels/${channel}`);
        subs.push(s);
        await s.opened;
      };
      await open(a.base, 'shared');
      await open(a.base, 'shared');
      await open(b.base, 'shared');
      await open(b.base, 'only-b');
      await open(b.base, 'only-b');
      const r = await publish(b.base, 'history', [{ data: '1' }, { data: '2' }]);
      assert.equal(r.status, 202);
      const expected = [
        ['history', 0, 2],
        ['only-b', 2, 0],
        ['shared', 3, 0],
      ];
      const view = async (base: string) => {
        const { body } = await getJson<Page>(base, '/channels');
        return body.channels.map((c) => [c.name, c.subscribers, c.historyLength]);
      };
      // Each replica sees the other's counts once its presence tick has written them.
      for (const base of [a.base, b.base]) {
        await eventually(
          async () => JSON.stringify(await view(base)) === JSON.stringify(expected),
          10_000,
          `both replicas' counts on ${base}`,
        );
      }
      const history = await getJson<Facts>(a.base, '/channels/history');
      assert.equal(history.body.lastEventId, r.body.ids![1]);
      assert.equal(
        history.body.lastPublishAt,
        new Date(Number(r.body.ids![1]!.split('-')[0])).toISOString(),
      );
      const metrics = await (await fetch(`${a.base}/metrics`)).text();
      assert.equal(metric(metrics, 'sse_channels'), 3);

      // Presence keys hold a '#' (never a channel's stream key) and expire by themselves.
      const replicas = (await redisCall(
        redis.port,
        'ZRANGE',
        `${prefix}#replicas`,
        0,
        -1,
      )) as string[];
      assert.equal(replicas.length, 2);
      for (const id of replicas) {
        const ttl = Number(await redisCall(redis.port, 'PTTL', `${prefix}#presence:${id}`));
        assert.ok(ttl > 0 && ttl <= TTL, `presence of ${id} expires (pttl ${ttl})`);
      }

      b.kill('SIGKILL');
      await b.exited;
      // Nothing removed b's presence: it expires on its own within the TTL.
      await eventually(
        async () =>
          JSON.stringify(await view(a.base)) ===
          JSON.stringify([
            ['history', 0, 2],
            ['shared', 2, 0],
          ]),
        10_000,
        "the killed replica's subscribers to leave the count",
      );
      assert.equal((await fetch(`${a.base}/channels/only-b`)).status, 404);
      // The survivor's next presence write drops the dead replica from the list as well.
      const own = (a.server.channels as RedisChannelDirectory).replica;
      await eventually(
        async () =>
          JSON.stringify(await redisCall(redis.port, 'ZRANGE', `${prefix}#replicas`, 0, -1)) ===
          JSON.stringify([own]),
        10_000,
        'the replica list to hold the survivor only',
      );
    } finally {
      for (const s of subs) s.close();
      b.kill('SIGKILL');
      await a.close();
    }
  });

  test('a replica that shuts down removes its presence at once', { timeout: 60_000 }, async () => {
    const prefix = 'c2:';
    const config = {
      broker: {
        type: 'redis',
        url: redis.url,
        keyPrefix: prefix,
        redis: { presenceTtlMs: 60_000 },
      },
      shutdownTimeoutMs: 1000,
    };
    const a = await startServer(config);
    const b = await startServer(config);
    const s = new Subscriber(`${b.base}/sse/channels/news`);
    try {
      await s.opened;
      await eventually(
        async () => (await getJson<Facts>(a.base, '/channels/news')).body.subscribers === 1,
        10_000,
        "b's subscriber counted on a",
      );
      await b.close();
      // The TTL is a minute: only b's goodbye can make the channel go now.
      assert.equal((await fetch(`${a.base}/channels/news`)).status, 404);
      const replicas = (await redisCall(redis.port, 'ZCARD', `${prefix}#replicas`)) as number;
      assert.ok(replicas <= 1);
    } finally {
      s.close();
      await b.close();
      await a.close();
    }
  });

  test('Redis unreachable: the API answers 503 JSON', { timeout: 60_000 }, async () => {
    const other = await startRedis();
    const t = await startServer({ broker: { type: 'redis', url: other.url, keyPrefix: 'c3:' } });
    try {
      assert.equal((await fetch(`${t.base}/channels`)).status, 200);
      await other.kill();
      await eventually(
        async () => (await fetch(`${t.base}/channels`)).status === 503,
        10_000,
        '503 once Redis is gone',
      );
      const body = (await (await fetch(`${t.base}/channels/x`)).json()) as { error: string };
      assert.equal(body.error, 'broker_unavailable');
    } finally {
      await t.close();
      await other.stop();
    }
  });
});
