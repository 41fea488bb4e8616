// Property: whatever token and claims arrive, authorize() never throws, always answers a
// well-formed decision, and never grants a channel that no pattern of the token's claim for that
// operation covers, nor anything to a token not signed with the configured secret.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  type AuthDecision,
  type Authorizer,
  createAuthorizer,
} from '../../services/server/src/auth/access.ts';
import { patternMatches } from '../../services/server/src/channel-names.ts';
import { authConfig, newSecret, nowSec } from '../helpers/auth-keys.ts';

const secret = newSecret();
let authz: Authorizer;
before(async () => {
  authz = await createAuthorizer(authConfig({ jwt: { secret } }), {
    watchKeys: false,
    reloadOnSighup: false,
  });
});
after(() => authz.close());

const b64 = (text: string) => Buffer.from(text).toString('base64url');
const hs256 = (input: string, key: string) =>
  createHmac('sha256', key).update(input).digest('base64url');

// Channel names and patterns over a small alphabet, so that they often meet.
const nameChar = fc.constantFrom('a', 'b', '.', '1', ':');
const channel = fc.string({ unit: nameChar, minLength: 1, maxLength: 5 });
const pattern = fc.oneof(
  fc.constantFrom('*', 'a*', 'b*', 'a.*', 'a', 'b', '1*'),
  channel,
  channel.map((c) => `${c}*`),
  fc.constant('*'),
  fc.string({ maxLength: 4 }),
);
const patterns = fc.oneof(
  { weight: 4, arbitrary: fc.array(pattern, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(pattern, fc.jsonValue()), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue() },
);
const sseClaim = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ subscribe: patterns, publish: patterns }, { requiredKeys: [] }),
  },
  { weight: 1, arbitrary: fc.jsonValue() },
);
const time = fc.oneof(
  fc.integer({ min: -7200, max: 7200 }).map((d) => nowSec() + d),
  fc.jsonValue(),
);
const wildClaims = fc.record(
  { exp: time, nbf: time, iat: time, sse: sseClaim, sub: fc.string() },
  { requiredKeys: [] },
);
// Mostly plausible claims (unexpired, pattern lists), so that grants happen often enough to test.
const plausibleClaims = fc.record({
  exp: fc.integer({ min: 60, max: 7200 }).map((d) => nowSec() + d),
  sse: fc.record({ subscribe: fc.array(pattern, { maxLength: 4 }), publish: patterns }),
});
const claims = fc.oneof(
  { weight: 3, arbitrary: plausibleClaims },
  { weight: 1, arbitrary: wildClaims },
);
const header = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ alg: 'HS256' }) },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        alg: fc.oneof(
          fc.constantFrom('HS256', 'HS384', 'none', 'RS256', 'ES256', 'EdDSA'),
          fc.jsonValue(),
        ),
        kid: fc.oneof(fc.string(), fc.jsonValue()),
        typ: fc.constant('JWT'),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue() },
);

/** A token and whether it carries a valid HS256 signature with the configured secret. */
const token = fc.oneof(
  // Claims of any shape, correctly signed (header alg may still be wrong).
  {
    weight: 5,
    arbitrary: fc.tuple(header, claims).map(([h, c]) => {
      const input = `${b64(JSON.stringify(h))}.${b64(JSON.stringify(c))}`;
      return { token: `${input}.${hs256(input, secret)}`, ours: true };
    }),
  },
  // Signed with another secret.
  fc.tuple(header, claims).map(([h, c]) => {
    const input = `${b64(JSON.stringify(h))}.${b64(JSON.stringify(c))}`;
    return { token: `${input}.${hs256(input, 'not-the-secret-not-the-secret-xx')}`, ours: false };
  }),
  // A signed token with one character changed.
  fc.tuple(claims, fc.nat(), fc.constantFrom('A', '-', '_', '.', '=', ' ')).map(([c, at, ch]) => {
    const input = `${b64('{"alg":"HS256"}')}.${b64(JSON.stringify(c))}`;
    const t = `${input}.${hs256(input, secret)}`;
    const i = at % t.length;
    const changed = `${t.slice(0, i)}${ch}${t.slice(i + 1)}`;
    return { token: changed, ours: changed === t };
  }),
  // Anything at all.
  fc.string({ maxLength: 80 }).map((t) => ({ token: t, ours: false })),
  fc
    .array(fc.base64String({ maxLength: 24 }), { minLength: 1, maxLength: 4 })
    .map((parts) => ({ token: parts.join('.'), ours: false })),
);

const place = fc.constantFrom('header', 'query', 'cookie');

test('random tokens and claims: no throw, a well-formed answer, never an uncovered grant', async () => {
  const seen = { allowed: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(
      token,
      channel,
      fc.constantFrom('subscribe', 'publish'),
      place,
      async ({ token: t, ours }, ch, op, where) => {
        const req =
          where === 'header'
            ? { headers: { authorization: `Bearer ${t}` } }
            : where === 'query'
              ? { headers: {}, url: `/sse/channels/${ch}?access_token=${encodeURIComponent(t)}` }
              : { headers: { cookie: `sse_token=${encodeURIComponent(t)}` } };
        const d: AuthDecision = await authz.authorize(op, ch, req);
        seen[d.kind === 'allowed' ? 'allowed' : 'refused']++;
        if (d.kind === 'refused') {
          assert.equal(d.status === 403, d.reason === 'insufficient_scope');
          assert.match(d.headers['WWW-Authenticate']!, /^Bearer realm="http-sse", error="/);
          assert.equal(d.body.error, d.status === 401 ? 'invalid_token' : 'insufficient_scope');
          return;
        }
        assert.equal(d.kind, 'allowed');
        if (d.kind !== 'allowed') return;
        // Granted: it must be ours, unexpired, and one of its patterns for `op` must cover `ch`.
        assert.ok(ours, `granted a token not signed with the secret: ${t}`);
        const payload = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString());
        assert.equal(typeof payload.exp, 'number');
        assert.equal(d.expiresAt, payload.exp * 1000);
        assert.ok(payload.exp > nowSec() - 31);
        const claim: unknown = payload.sse[op];
        assert.ok(Array.isArray(claim) && claim.every((p) => typeof p === 'string'));
        assert.ok(
          (claim as string[]).some((p) => patternMatches(p, ch)),
          `granted ${op} ${ch} for ${JSON.stringify(claim)}`,
        );
      },
    ),
    { numRuns: 2000 },
  );
  // The property means something only if grants happen (about one answer in twelve).
  console.log(seen);
  assert.ok(seen.allowed > 20 && seen.refused > 1000, JSON.stringify(seen));
});
