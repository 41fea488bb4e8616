// Private channels through the routes: signed tokens on subscribe and publish (header, query,
// cookie), 401/403 with WWW-Authenticate and CORS (an EventSource too), public channels, a stream
// ended by `event: reauth` when its token expires (no timer per stream), and keys rotated on
// SIGHUP without cutting open streams.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../../services/shared/eventually.ts';
import {
  jwks,
  keyPair,
  newSecret,
  nowSec,
  replaceFile,
  signToken,
  tempDir,
} from '../helpers/auth-keys.ts';
import { spawnServer } from '../helpers/process.ts';
import {
  openStreams,
  publish,
  Subscriber,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const ORIGIN = 'https://app.example';

describe('signed tokens on the routes (HS256 secret)', () => {
  const secret = newSecret();
  let t: TestServer;
  const token = (sse: object, ttl = 3600) => signToken(secret, { sse }, { ttl });
  before(async () => {
    t = await startServer({
      auth: { jwt: { secret }, publicChannels: ['public.*'] },
      cors: { allowedOrigins: [ORIGIN], allowCredentials: true },
    });
  });
  after(() => t.close());

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${t.base}${path}`, { headers: { origin: ORIGIN, ...headers } });

  test('no token: 401 invalid_token with WWW-Authenticate and CORS; an EventSource too', async () => {
    for (const accept of [undefined, 'text/event-stream']) {
      const res = await get('/sse/channels/orders.1', accept ? { accept } : {});
      assert.equal(res.status, 401);
      assert.match(String(res.headers.get('www-authenticate')), /error="invalid_token"/);
      assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
      assert.equal(((await res.json()) as { error: string }).error, 'invalid_token');
    }
  });

  test('a token covering the channel opens it, from the header, the query and the cookie', async () => {
    const jwt = await token({ subscribe: ['orders.*'] });
    const ways: [string, Record<string, string>][] = [
      ['/sse/channels/orders.1', { authorization: `Bearer ${jwt}` }],
      [`/sse/channels/orders.2?access_token=${jwt}`, {}],
      ['/sse/channels/orders.3', { cookie: `sse_token=${jwt}` }],
    ];
    for (const [path, headers] of ways) {
      const sub = new Subscriber(`${t.base}${path}`, headers);
      await sub.opened;
      assert.equal(sub.status, 200, path);
      sub.close();
    }
  });

  test('a token that does not cover the channel: 403 insufficient_scope naming it', async () => {
    const jwt = await token({ subscribe: ['orders.*'], publish: ['orders.*'] });
    for (const accept of [undefined, 'text/event-stream']) {
      const res = await get('/sse/channels/users.7', {
        authorization: `Bearer ${jwt}`,
        ...(accept ? { accept } : {}),
      });
      assert.equal(res.status, 403);
      assert.match(String(res.headers.get('www-authenticate')), /error="insufficient_scope"/);
      assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
      assert.deepEqual(
        { ...((await res.json()) as object), message: undefined },
        { error: 'insufficient_scope', channel: 'users.7', message: undefined },
      );
    }
    const pub = await publish(t.base, 'users.7', { data: 'x' }, { authorization: `Bearer ${jwt}` });
    assert.equal(pub.status, 403);
    assert.equal(pub.body.error, 'insufficient_scope');
  });

  test('publish needs a publish pattern; a subscribe-only token is refused', async () => {
    const both = await token({ subscribe: ['orders.*'], publish: ['orders.*'] });
    const readOnly = await token({ subscribe: ['orders.*'] });
    const sub = new Subscriber(`${t.base}/sse/channels/orders.9`, {
      authorization: `Bearer ${readOnly}`,
    });
    await sub.opened;
    const ok = await publish(
      t.base,
      'orders.9',
      { data: 'hi' },
      { authorization: `Bearer ${both}` },
    );
    assert.equal(ok.status, 202);
    await sub.waitFor(1);
    assert.equal(sub.events[0]!.data, 'hi');
    sub.close();
    const no = await publish(
      t.base,
      'orders.9',
      { data: 'x' },
      { authorization: `Bearer ${readOnly}` },
    );
    assert.equal(no.status, 403);
    const none = await publish(t.base, 'orders.9', { data: 'x' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'invalid_token');
  });

  test('several channels in one stream: every one must be allowed; 403 names the ones refused', async () => {
    const jwt = await token({ subscribe: ['orders.*'] });
    const auth = { authorization: `Bearer ${jwt}` };
    const refused = await get(
      '/sse/streams?channel=orders.1&channel=users.1&channel=public.x&channel=users.2',
      auth,
    );
    assert.equal(refused.status, 403);
    const body = (await refused.json()) as { error: string; channels: string[] };
    assert.equal(body.error, 'insufficient_scope');
    assert.deepEqual(body.channels, ['users.1', 'users.2']);
    const ok = new Subscriber(`${t.base}/sse/streams?channel=orders.1&channel=public.x`, auth);
    await ok.opened;
    assert.equal(ok.status, 200, 'a private channel the token covers with a public one');
    ok.close();
    const none = await get('/sse/streams?channel=orders.1&channel=public.x');
    assert.equal(none.status, 401);
  });

  test('public channels open without a token (for subscribing only)', async () => {
    const sub = new Subscriber(`${t.base}/sse/channels/public.news`);
    await sub.opened;
    assert.equal(sub.status, 200);
    sub.close();
    const pub = await publish(t.base, 'public.news', { data: 'x' });
    assert.equal(pub.status, 401);
  });

  test('a stream ends with event: reauth within a second of its token expiring', async () => {
    const exp = nowSec() + 2;
    const jwt = await signToken(secret, { sse: { subscribe: ['orders.*'] }, exp }, { ttl: null });
    const sub = new Subscriber(`${t.base}/sse/channels/orders.exp`, {
      authorization: `Bearer ${jwt}`,
    });
    await sub.opened;
    await sub.waitFor(1, 10_000);
    const endedAt = Date.now();
    await sub.closed;
    const reauth = sub.events.at(-1)!;
    assert.equal(reauth.event, 'reauth');
    assert.deepEqual(JSON.parse(reauth.data), { reason: 'token_expired' });
    assert.equal(sub.ended, true, 'a clean end (the chunked terminator)');
    assert.ok(endedAt >= exp * 1000, 'not before exp');
    assert.ok(
      endedAt <= exp * 1000 + 1000 + 200,
      `within a second of exp: ${endedAt - exp * 1000} ms`,
    );
  });

  test('1000 streams with staggered expiries add no timer', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const idle = new Subscriber(`${t.base}/sse/channels/public.warm`);
    await idle.opened;
    const before = timers();
    const subs: Subscriber[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const jwt = await token({ subscribe: ['orders.*'] }, 60 + (i % 600));
        subs.push(new Subscriber(`${t.base}/sse/channels/orders.s${i % 10}?access_token=${jwt}`));
      }
      await Promise.all(subs.map((s) => s.opened));
      assert.equal(openStreams(t.server), 1001);
      assert.equal(timers(), before, 'the expiries ride on the one stream-watch timer');
    } finally {
      for (const s of subs) s.close();
      idle.close();
      await eventually(() => openStreams(t.server) === 0, 10_000, 'streams closed');
    }
  });
});

describe('key rotation on SIGHUP (a JWKS file, a spawned server)', () => {
  test('new tokens work, old ones get 401, streams already open stay', async () => {
    const { dir, remove } = tempDir();
    const oldKey = keyPair('ec');
    const newKey = keyPair('ec');
    const file = join(dir, 'jwks.json');
    writeFileSync(file, jwks({ pair: oldKey, kid: 'old' }));
    const srv = await spawnServer({ SSE_JWKS_FILE: file, SSE_PUBLISH_TOKEN: 'p' });
    const sign = (pair: typeof oldKey, kid: string) =>
      signToken(pair.privateKey, { sse: { subscribe: ['*'] } }, { alg: 'ES256', kid });
    const status = async (jwt: string) => {
      const res = await fetch(`${srv.base}/sse/channels/c?access_token=${jwt}`, {
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      return res.status;
    };
    const open = new Subscriber(
      `${srv.base}/sse/channels/c?access_token=${await sign(oldKey, 'old')}`,
    );
    try {
      await open.opened;
      assert.equal(open.status, 200);
      assert.equal(await status(await sign(oldKey, 'old')), 200);
      assert.equal(await status(await sign(newKey, 'new')), 401);
      replaceFile(file, jwks({ pair: newKey, kid: 'new' }));
      srv.kill('SIGHUP');
      await eventually(
        async () => (await status(await sign(newKey, 'new'))) === 200,
        10_000,
        'the new key',
      );
      assert.equal(await status(await sign(oldKey, 'old')), 401);
      const r = await publish(srv.base, 'c', { data: 'after' }, { authorization: 'Bearer p' });
      assert.equal(r.status, 202);
      await open.waitFor(1);
      assert.equal(open.events[0]!.data, 'after', 'the open stream was not cut');
    } finally {
      open.close();
      await srv.stop();
      remove();
    }
  });
});
