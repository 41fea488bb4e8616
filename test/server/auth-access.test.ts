// authorize(): the one decision the routes will ask for. Every bad token is refused with the
// right status, reason, WWW-Authenticate and body, and counted; a good one is allowed exactly
// where one of its patterns covers the channel, through each place a token is read; public
// channels; the static tokens as before; both kinds of token at once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import {
  type AuthDecision,
  type AuthFailureReason,
  type AuthOp,
  type Authorizer,
  createAuthorizer,
  type TokenRequest,
} from '../../services/server/src/auth/access.ts';
import type { ServerConfig } from '../../services/server/src/config.ts';
import { AUTH_FAILURE_REASONS, createServerMetrics } from '../../services/server/src/metrics.ts';
import {
  authConfig,
  hmacToken,
  jwks,
  keyPair,
  newSecret,
  nowSec,
  rawSignedToken,
  signToken,
  type TestKeyPair,
  tempDir,
  unsignedToken,
} from '../helpers/auth-keys.ts';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'http-sse';
const REALM = 'Bearer realm="http-sse"';

/** An authorizer with its own failure counter; no file watching, no SIGHUP listener. */
async function setUp(config: ServerConfig) {
  const registry = new Registry();
  const authFailures = new Counter({
    name: 'sse_auth_failures_total',
    help: 'test',
    labelNames: ['reason'],
    registers: [registry],
  });
  const authz = await createAuthorizer(config, {
    metrics: { authFailures },
    watchKeys: false,
    reloadOnSighup: false,
  });
  const counts = async () => {
    const out: Record<string, number> = {};
    for (const v of (await authFailures.get()).values) out[String(v.labels.reason)] = v.value;
    return out;
  };
  return { authz, counts };
}

const bearer = (token: string): TokenRequest => ({
  headers: { authorization: `Bearer ${token}` },
  url: '/sse/channels/x',
});
const query = (token: string): TokenRequest => ({
  headers: {},
  url: `/sse/channels/x?lastEventId=1&access_token=${encodeURIComponent(token)}`,
});
const cookie = (token: string, name = 'sse_token'): TokenRequest => ({
  headers: { cookie: `theme=dark; ${name}=${token}; other=1` },
  url: '/sse/channels/x',
});
const none: TokenRequest = { headers: {}, url: '/sse/channels/x' };

async function decide(
  authz: Authorizer,
  op: AuthOp,
  channel: string,
  req: TokenRequest,
): Promise<AuthDecision> {
  return await authz.authorize(op, channel, req);
}

function assertRefused(
  d: AuthDecision,
  status: 401 | 403,
  reason: AuthFailureReason,
  channel?: string,
): void {
  assert.equal(d.kind, 'refused', JSON.stringify(d));
  if (d.kind !== 'refused') return;
  assert.equal(d.status, status);
  assert.equal(d.reason, reason);
  const www = d.headers['WWW-Authenticate']!;
  if (status === 401) {
    assert.equal(d.body.error, 'invalid_token');
    assert.deepEqual(Object.keys(d.body), ['error', 'message']);
    assert.ok(d.body.message.length > 0);
    assert.equal(www, `${REALM}, error="invalid_token", error_description="${d.body.message}"`);
    assert.doesNotMatch(d.body.message, /["\\]/);
  } else {
    assert.equal(www, `${REALM}, error="insufficient_scope"`);
    assert.equal(d.body.error, 'insufficient_scope');
    assert.deepEqual(Object.keys(d.body), ['error', 'channel', 'message']);
    if (d.body.error === 'insufficient_scope') assert.equal(d.body.channel, channel);
  }
}

function assertAllowed(d: AuthDecision, expiresAt: number | null): void {
  assert.deepEqual(d, { kind: 'allowed', expiresAt }, JSON.stringify(d));
}

/** Checks one refusal and that it, alone, moved the counter. */
async function refusedOnce(
  env: Awaited<ReturnType<typeof setUp>>,
  ask: () => Promise<AuthDecision> | AuthDecision,
  status: 401 | 403,
  reason: AuthFailureReason,
  channel?: string,
): Promise<void> {
  const before = await env.counts();
  assertRefused(await ask(), status, reason, channel);
  const afterCounts = await env.counts();
  for (const r of AUTH_FAILURE_REASONS) {
    assert.equal(afterCounts[r] ?? 0, (before[r] ?? 0) + (r === reason ? 1 : 0), r);
  }
}

describe('a shared secret (HS256), with issuer and audience', () => {
  const secret = newSecret();
  let env: Awaited<ReturnType<typeof setUp>>;
  const claims = (more: Record<string, unknown> = {}) => ({
    iss: ISSUER,
    aud: AUDIENCE,
    sse: { subscribe: ['orders.*', 'news'], publish: ['orders.eu'] },
    ...more,
  });
  before(async () => {
    env = await setUp(authConfig({ jwt: { secret, issuer: ISSUER, audience: AUDIENCE } }));
  });
  after(() => env.authz.close());

  test('a good token is allowed where a pattern covers the channel, with its exp', async () => {
    const exp = nowSec() + 600;
    const token = await signToken(secret, claims({ exp }));
    for (const channel of ['orders.1', 'orders.', 'orders.eu.west', 'news']) {
      assertAllowed(await decide(env.authz, 'subscribe', channel, bearer(token)), exp * 1000);
    }
    for (const channel of ['orders', 'ordersX', 'news.1', 'new', 'other']) {
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', channel, bearer(token)),
        403,
        'insufficient_scope',
        channel,
      );
    }
    assertAllowed(await decide(env.authz, 'publish', 'orders.eu', bearer(token)), exp * 1000);
    await refusedOnce(
      env,
      () => env.authz.authorize('publish', 'orders.us', bearer(token)),
      403,
      'insufficient_scope',
      'orders.us',
    );
    const d = await decide(env.authz, 'publish', 'news', bearer(token));
    assert.ok(d.kind === 'refused' && d.body.message.includes('publishing'));
  });

  test('"*" covers every channel; no other character is special', async () => {
    const all = await signToken(secret, claims({ sse: { subscribe: ['*'] } }));
    assert.equal((await decide(env.authz, 'subscribe', 'anything', bearer(all))).kind, 'allowed');
    const odd = await signToken(secret, claims({ sse: { subscribe: ['a*b', 'a.?', 'user.*.x'] } }));
    for (const channel of ['ab', 'axb', 'a.b', 'user.1.x']) {
      assertRefused(
        await decide(env.authz, 'subscribe', channel, bearer(odd)),
        403,
        'insufficient_scope',
        channel,
      );
    }
  });

  test('each place a token is read: header, query parameter, cookie', async () => {
    const token = await signToken(secret, claims());
    for (const req of [bearer(token), query(token), cookie(token)]) {
      assert.equal((await decide(env.authz, 'subscribe', 'news', req)).kind, 'allowed');
    }
    // A quoted cookie value, and the cookie among several Cookie headers' worth of pairs.
    const quoted: TokenRequest = { headers: { cookie: `a=1;sse_token="${token}"` } };
    assert.equal((await decide(env.authz, 'subscribe', 'news', quoted)).kind, 'allowed');
  });

  test('the first place that holds a token decides: header, then query, then cookie', async () => {
    const good = await signToken(secret, claims());
    const bad = await signToken(newSecret(), claims());
    const headerBad: TokenRequest = {
      headers: { authorization: `Bearer ${bad}`, cookie: `sse_token=${good}` },
      url: `/sse/channels/news?access_token=${good}`,
    };
    assertRefused(await decide(env.authz, 'subscribe', 'news', headerBad), 401, 'bad_signature');
    const queryBad: TokenRequest = {
      headers: { cookie: `sse_token=${good}` },
      url: `/sse/channels/news?access_token=${bad}`,
    };
    assertRefused(await decide(env.authz, 'subscribe', 'news', queryBad), 401, 'bad_signature');
    const queryGood: TokenRequest = {
      headers: { cookie: `sse_token=${bad}`, authorization: 'Basic dXNlcjpwYXNz' },
      url: `/sse/channels/news?access_token=${good}`,
    };
    assert.equal((await decide(env.authz, 'subscribe', 'news', queryGood)).kind, 'allowed');
  });

  test('no token: 401 missing', async () => {
    await refusedOnce(env, () => env.authz.authorize('subscribe', 'news', none), 401, 'missing');
    await refusedOnce(env, () => env.authz.authorize('publish', 'news', none), 401, 'missing');
    const empty: TokenRequest = { headers: { cookie: 'sse_token=' }, url: '/x?access_token=' };
    await refusedOnce(env, () => env.authz.authorize('subscribe', 'news', empty), 401, 'missing');
    const d = await decide(env.authz, 'subscribe', 'news', none);
    assert.ok(d.kind === 'refused' && d.body.message.includes('sse_token cookie'));
  });

  test('malformed tokens: not a JWS, a header that is not JSON, a bad kid or alg type', async () => {
    const valid = await signToken(secret, claims());
    const [, payload, sig] = valid.split('.');
    for (const token of [
      'not-a-jwt',
      'a.b',
      'a.b.c.d',
      `${Buffer.from('{not json').toString('base64url')}.${payload}.${sig}`,
      unsignedToken({ alg: 'HS256', kid: 7 }, { exp: nowSec() + 60 }, sig),
      unsignedToken({ alg: ['HS256'] }, { exp: nowSec() + 60 }, sig),
      // Correctly signed, but the payload is not a JSON object.
      hmacToken({ alg: 'HS256' }, [1, 2], secret),
      hmacToken({ alg: 'HS256' }, 'not json', secret),
    ]) {
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'news', bearer(token)),
        401,
        'malformed',
      );
    }
  });

  test('alg none is refused as bad_signature', async () => {
    const token = unsignedToken({ alg: 'none', typ: 'JWT' }, { ...claims(), exp: nowSec() + 60 });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(token)),
      401,
      'bad_signature',
    );
    const withSig = unsignedToken({ alg: 'none' }, { ...claims(), exp: nowSec() + 60 }, 'AAAA');
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(withSig)),
      401,
      'bad_signature',
    );
  });

  test('a wrong signature (another secret, a changed payload) is bad_signature', async () => {
    const other = await signToken(newSecret(), claims());
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(other)),
      401,
      'bad_signature',
    );
    const [h, , s] = (await signToken(secret, claims())).split('.');
    const wider = Buffer.from(
      JSON.stringify({ ...claims(), sse: { subscribe: ['*'] }, exp: nowSec() + 60 }),
    ).toString('base64url');
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'x', bearer(`${h}.${wider}.${s}`)),
      401,
      'bad_signature',
    );
  });

  test('expired, beyond the 30 s tolerance; within it still good', async () => {
    const expired = await signToken(secret, claims({ exp: nowSec() - 120 }));
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(expired)),
      401,
      'expired',
    );
    const justNow = await signToken(secret, claims({ exp: nowSec() - 5 }));
    assert.equal((await decide(env.authz, 'subscribe', 'news', bearer(justNow))).kind, 'allowed');
  });

  test('not yet valid: nbf or iat in the future beyond the tolerance', async () => {
    const nbf = await signToken(secret, claims({ nbf: nowSec() + 600 }));
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(nbf)),
      401,
      'not_yet_valid',
    );
    const iat = await signToken(secret, claims({ iat: nowSec() + 600 }));
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(iat)),
      401,
      'not_yet_valid',
    );
    const soon = await signToken(secret, claims({ nbf: nowSec() + 5, iat: nowSec() + 5 }));
    assert.equal((await decide(env.authz, 'subscribe', 'news', bearer(soon))).kind, 'allowed');
  });

  test('exp is required; exp, nbf or iat that is not a number is malformed', async () => {
    const noExp = await signToken(secret, claims(), { ttl: null });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(noExp)),
      401,
      'malformed',
    );
    for (const bad of [{ exp: 'tomorrow' }, { nbf: 'now' }, { iat: 'then' }]) {
      const token = await signToken(secret, claims(bad));
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'news', bearer(token)),
        401,
        'malformed',
      );
    }
  });

  test('wrong or missing issuer, wrong or missing audience', async () => {
    for (const iss of ['https://evil.test', undefined]) {
      const token = await signToken(secret, claims({ iss }));
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'news', bearer(token)),
        401,
        'wrong_issuer',
      );
    }
    for (const aud of ['other', ['other', 'more'], undefined]) {
      const token = await signToken(secret, claims({ aud }));
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'news', bearer(token)),
        401,
        'wrong_audience',
      );
    }
    const several = await signToken(secret, claims({ aud: ['other', AUDIENCE] }));
    assert.equal((await decide(env.authz, 'subscribe', 'news', bearer(several))).kind, 'allowed');
  });

  test('a claim that is not an array of strings is malformed for its operation only', async () => {
    for (const sse of [
      { subscribe: 'news' },
      { subscribe: ['news', 7] },
      { subscribe: null },
      { subscribe: { 0: 'news' } },
      'news',
      ['news'],
      null,
    ]) {
      const token = await signToken(secret, claims({ sse }));
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'news', bearer(token)),
        401,
        'malformed',
      );
    }
    // A bad publish claim does not spoil subscribing.
    const mixed = await signToken(
      secret,
      claims({ sse: { subscribe: ['news'], publish: 'news' } }),
    );
    assert.equal((await decide(env.authz, 'subscribe', 'news', bearer(mixed))).kind, 'allowed');
    await refusedOnce(
      env,
      () => env.authz.authorize('publish', 'news', bearer(mixed)),
      401,
      'malformed',
    );
  });

  test('no sse claim, or none for the operation: insufficient_scope', async () => {
    for (const sse of [undefined, {}, { publish: ['news'] }]) {
      const token = await signToken(secret, claims({ sse }));
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'news', bearer(token)),
        403,
        'insufficient_scope',
        'news',
      );
    }
  });

  test('a kid in an HMAC token is fine: the secret has none to mismatch', async () => {
    const token = await signToken(secret, claims(), { kid: 'whatever' });
    assert.equal((await decide(env.authz, 'subscribe', 'news', bearer(token))).kind, 'allowed');
    for (const alg of ['HS384', 'HS512']) {
      const t = await signToken(secret, claims(), { alg });
      assert.equal((await decide(env.authz, 'subscribe', 'news', bearer(t))).kind, 'allowed', alg);
    }
  });

  test('a token signed for RS256 is refused: no public key is configured', async () => {
    const rsa = keyPair('rsa');
    const token = await signToken(rsa.privateKey, claims(), { alg: 'RS256' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer(token)),
      401,
      'bad_signature',
    );
  });
});

describe('a PEM public key (RS256, PS256)', () => {
  let rsa: TestKeyPair;
  let env: Awaited<ReturnType<typeof setUp>>;
  let removeDir: () => void;
  const claims = { sse: { subscribe: ['orders.*'] } };
  before(async () => {
    rsa = keyPair('rsa');
    const { dir, remove } = tempDir();
    removeDir = remove;
    const file = join(dir, 'public.pem');
    writeFileSync(file, rsa.publicPem);
    env = await setUp(authConfig({ jwt: { publicKeys: file } }));
  });
  after(() => {
    env.authz.close();
    removeDir();
  });

  test('RS256 and PS256 tokens of the key are allowed, with or without a kid', async () => {
    for (const alg of ['RS256', 'PS256', 'RS512']) {
      const token = await signToken(rsa.privateKey, claims, { alg });
      assert.equal(
        (await decide(env.authz, 'subscribe', 'orders.1', bearer(token))).kind,
        'allowed',
        alg,
      );
    }
    const withKid = await signToken(rsa.privateKey, claims, { alg: 'RS256', kid: 'k1' });
    assert.equal(
      (await decide(env.authz, 'subscribe', 'orders.1', bearer(withKid))).kind,
      'allowed',
    );
  });

  test('HS256 signed with the public key (algorithm confusion) is refused', async () => {
    const payload = { ...claims, exp: nowSec() + 600 };
    for (const key of [
      rsa.publicPem,
      rsa.publicPem.trim(),
      rsa.publicKey.export({ type: 'spki', format: 'der' }),
    ]) {
      const token = hmacToken({ alg: 'HS256', typ: 'JWT' }, payload, key);
      await refusedOnce(
        env,
        () => env.authz.authorize('subscribe', 'orders.1', bearer(token)),
        401,
        'bad_signature',
      );
    }
  });

  test('another RSA key, or an EC key, is bad_signature', async () => {
    const other = keyPair('rsa');
    const t1 = await signToken(other.privateKey, claims, { alg: 'RS256' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'orders.1', bearer(t1)),
      401,
      'bad_signature',
    );
    const ec = keyPair('ec');
    const t2 = await signToken(ec.privateKey, claims, { alg: 'ES256' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'orders.1', bearer(t2)),
      401,
      'bad_signature',
    );
  });
});

describe('a PEM file with several keys (and a certificate)', () => {
  test('a token of any of them verifies; each kind only with its own algorithms', async (t) => {
    const ec1 = keyPair('ec');
    const ec2 = keyPair('ec');
    const ed = keyPair('ed25519');
    const { dir, remove } = tempDir();
    t.after(remove);
    let pem = ec1.publicPem + ec2.publicPem + ed.publicPem;
    // A certificate block, when openssl is there to make one.
    const cert = keyPair('ec');
    const keyFile = join(dir, 'cert-key.pem');
    writeFileSync(keyFile, cert.privatePem);
    const made = spawnSync(
      'openssl',
      ['req', '-new', '-x509', '-key', keyFile, '-subj', '/CN=test', '-days', '1'],
      {
        encoding: 'utf8',
      },
    );
    const withCert = made.status === 0 && made.stdout.includes('BEGIN CERTIFICATE');
    if (withCert) pem += made.stdout;
    const file = join(dir, 'keys.pem');
    writeFileSync(file, `# comments and blank lines around blocks are fine\n\n${pem}`);
    const env = await setUp(authConfig({ jwt: { publicKeys: file } }));
    t.after(() => env.authz.close());
    const claims = { sse: { subscribe: ['a'] } };
    const signers: [TestKeyPair, string][] = [
      [ec1, 'ES256'],
      [ec2, 'ES256'],
      [ed, 'EdDSA'],
      [ed, 'Ed25519'],
    ];
    if (withCert) signers.push([cert, 'ES256']);
    for (const [pair, alg] of signers) {
      const token = await signToken(pair.privateKey, claims, { alg });
      assert.equal((await decide(env.authz, 'subscribe', 'a', bearer(token))).kind, 'allowed', alg);
    }
    const stranger = await signToken(keyPair('ec').privateKey, claims, { alg: 'ES256' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'a', bearer(stranger)),
      401,
      'bad_signature',
    );
    const rsa = await signToken(keyPair('rsa').privateKey, claims, { alg: 'RS256' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'a', bearer(rsa)),
      401,
      'bad_signature',
    );
  });
});

describe('a JWKS file (ES256 and EdDSA keys selected by kid)', () => {
  let ec: TestKeyPair;
  let ed: TestKeyPair;
  let env: Awaited<ReturnType<typeof setUp>>;
  let removeDir: () => void;
  const claims = { sse: { subscribe: ['user.42.*'], publish: ['user.42.inbox'] } };
  before(async () => {
    ec = keyPair('ec');
    ed = keyPair('ed25519');
    const { dir, remove } = tempDir();
    removeDir = remove;
    const file = join(dir, 'keys.json');
    writeFileSync(file, jwks({ pair: ec, kid: 'ec-1' }, { pair: ed, kid: 'ed-1' }));
    env = await setUp(authConfig({ jwt: { jwksFile: file } }));
  });
  after(() => {
    env.authz.close();
    removeDir();
  });

  test('a token is verified with the key its kid names', async () => {
    const t1 = await signToken(ec.privateKey, claims, { alg: 'ES256', kid: 'ec-1' });
    const t2 = await signToken(ed.privateKey, claims, { alg: 'EdDSA', kid: 'ed-1' });
    for (const t of [t1, t2]) {
      assert.equal(
        (await decide(env.authz, 'subscribe', 'user.42.feed', bearer(t))).kind,
        'allowed',
      );
      assert.equal(
        (await decide(env.authz, 'publish', 'user.42.inbox', bearer(t))).kind,
        'allowed',
      );
      assertRefused(
        await decide(env.authz, 'subscribe', 'user.43.feed', bearer(t)),
        403,
        'insufficient_scope',
        'user.43.feed',
      );
    }
  });

  test('an unknown kid is unknown_kid; a known kid with another key is bad_signature', async () => {
    const unknown = await signToken(ec.privateKey, claims, { alg: 'ES256', kid: 'ec-9' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'user.42.a', bearer(unknown)),
      401,
      'unknown_kid',
    );
    // The kid of the EdDSA key, on an ES256 token: no ES256 key has it.
    const crossed = await signToken(ec.privateKey, claims, { alg: 'ES256', kid: 'ed-1' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'user.42.a', bearer(crossed)),
      401,
      'unknown_kid',
    );
    const forged = await signToken(keyPair('ec').privateKey, claims, { alg: 'ES256', kid: 'ec-1' });
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'user.42.a', bearer(forged)),
      401,
      'bad_signature',
    );
  });

  test('without a kid, the single key of the algorithm is used', async () => {
    const token = rawSignedToken({ alg: 'ES256' }, { ...claims, exp: nowSec() + 60 }, ec);
    assert.equal(
      (await decide(env.authz, 'subscribe', 'user.42.a', bearer(token))).kind,
      'allowed',
    );
  });

  test('HS256 with any of the public keys is refused', async () => {
    const payload = { ...claims, exp: nowSec() + 60 };
    const token = hmacToken({ alg: 'HS256', kid: 'ec-1' }, payload, JSON.stringify(ec.publicJwk));
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'user.42.a', bearer(token)),
      401,
      'bad_signature',
    );
  });
});

describe('the static tokens (the simple mode), unchanged', () => {
  test('nothing configured: not_configured for both operations, synchronously', async () => {
    const { authz } = await setUp(authConfig());
    for (const op of ['subscribe', 'publish'] as const) {
      assert.deepEqual(authz.authorize(op, 'news', none), { kind: 'not_configured' });
      assert.deepEqual(authz.authorize(op, 'news', bearer('x')), { kind: 'not_configured' });
    }
    authz.close();
  });

  test('subscribe.token: header or query, every channel; wrong or absent: 401', async () => {
    const env = await setUp(authConfig({}, { subscribe: 'sub-token' }));
    for (const req of [bearer('sub-token'), query('sub-token')]) {
      assertAllowed(env.authz.authorize('subscribe', 'any.channel', req) as AuthDecision, null);
    }
    await refusedOnce(env, () => env.authz.authorize('subscribe', 'news', none), 401, 'missing');
    // Never read from a cookie in this mode: as if absent.
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', cookie('sub-token')),
      401,
      'missing',
    );
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'news', bearer('nope')),
      401,
      'bad_signature',
    );
    assert.deepEqual(env.authz.authorize('publish', 'news', none), { kind: 'not_configured' });
    const d = env.authz.authorize('subscribe', 'news', none) as AuthDecision;
    assert.ok(d.kind === 'refused' && !d.body.message.includes('cookie'));
  });

  test('publish.token: header only, every channel', async () => {
    const env = await setUp(authConfig({}, { publish: 'pub-token' }));
    assertAllowed(env.authz.authorize('publish', 'x', bearer('pub-token')) as AuthDecision, null);
    await refusedOnce(
      env,
      () => env.authz.authorize('publish', 'x', query('pub-token')),
      401,
      'missing',
    );
    await refusedOnce(
      env,
      () => env.authz.authorize('publish', 'x', bearer('sub')),
      401,
      'bad_signature',
    );
    assert.deepEqual(env.authz.authorize('subscribe', 'x', none), { kind: 'not_configured' });
  });
});

describe('both modes at once', () => {
  const secret = newSecret();
  let env: Awaited<ReturnType<typeof setUp>>;
  before(async () => {
    env = await setUp(
      authConfig({ jwt: { secret } }, { subscribe: 'static-sub', publish: 'static-pub' }),
    );
  });
  after(() => env.authz.close());

  test('either grants: the static token without expiry, a signed one with its exp', async () => {
    assertAllowed(
      env.authz.authorize('subscribe', 'a', bearer('static-sub')) as AuthDecision,
      null,
    );
    assertAllowed(env.authz.authorize('subscribe', 'a', query('static-sub')) as AuthDecision, null);
    assertAllowed(env.authz.authorize('publish', 'a', bearer('static-pub')) as AuthDecision, null);
    const exp = nowSec() + 100;
    const token = await signToken(secret, { exp, sse: { subscribe: ['a'], publish: ['a'] } });
    assertAllowed(await decide(env.authz, 'subscribe', 'a', cookie(token)), exp * 1000);
    assertAllowed(await decide(env.authz, 'publish', 'a', bearer(token)), exp * 1000);
  });

  test('each static token is for its own operation and its own places', async () => {
    await refusedOnce(
      env,
      () => env.authz.authorize('publish', 'a', bearer('static-sub')),
      401,
      'malformed',
    );
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'a', bearer('static-pub')),
      401,
      'malformed',
    );
    // The static subscribe token in a cookie: only tried as a signed token.
    await refusedOnce(
      env,
      () => env.authz.authorize('subscribe', 'a', cookie('static-sub')),
      401,
      'malformed',
    );
  });
});

describe('public channels', () => {
  const secret = newSecret();
  let env: Awaited<ReturnType<typeof setUp>>;
  before(async () => {
    env = await setUp(authConfig({ jwt: { secret }, publicChannels: ['public.*', 'lobby'] }));
  });
  after(() => env.authz.close());

  test('anyone may subscribe to them, with no expiry, whatever token comes along', async () => {
    for (const channel of ['public.news', 'public.', 'lobby']) {
      assertAllowed(env.authz.authorize('subscribe', channel, none) as AuthDecision, null);
      assertAllowed(
        env.authz.authorize('subscribe', channel, bearer('junk')) as AuthDecision,
        null,
      );
    }
    await refusedOnce(env, () => env.authz.authorize('subscribe', 'lobby2', none), 401, 'missing');
    await refusedOnce(env, () => env.authz.authorize('subscribe', 'public', none), 401, 'missing');
  });

  test('for subscribing only: publishing still needs a token', async () => {
    await refusedOnce(
      env,
      () => env.authz.authorize('publish', 'public.news', none),
      401,
      'missing',
    );
  });

  test('with only a static subscribe token, they are open too', async () => {
    const s = await setUp(authConfig({ publicChannels: ['lobby'] }, { subscribe: 'tok' }));
    assertAllowed(s.authz.authorize('subscribe', 'lobby', none) as AuthDecision, null);
    await refusedOnce(s, () => s.authz.authorize('subscribe', 'other', none), 401, 'missing');
  });
});

test('sse_auth_failures_total: every reason starts at 0 in the server registry', async () => {
  const metrics = createServerMetrics(() => 0);
  const text = await metrics.registry.metrics();
  for (const reason of AUTH_FAILURE_REASONS) {
    assert.match(text, new RegExp(`^sse_auth_failures_total\\{reason="${reason}"\\} 0$`, 'm'));
  }
  assert.deepEqual(
    [...AUTH_FAILURE_REASONS],
    [
      'missing',
      'malformed',
      'bad_signature',
      'expired',
      'not_yet_valid',
      'wrong_issuer',
      'wrong_audience',
      'unknown_kid',
      'insufficient_scope',
    ],
  );
  // Counted by the authorizer on the server's own counter.
  const authz = await createAuthorizer(authConfig({}, { subscribe: 's' }), { metrics });
  authz.authorize('subscribe', 'x', none);
  assert.match(
    await metrics.registry.metrics(),
    /^sse_auth_failures_total\{reason="missing"\} 1$/m,
  );
  authz.close();
});
