// What a token check costs: p50/p99 of N verifications (default 10,000) per algorithm, one at a
// time on an otherwise idle event loop, through JwtVerifier.verify (jose jwtVerify with keys
// imported once, as the server does) and through the whole authorize() (token lookup, verify,
// claim match). Not a test: a figure for docs/PERFORMANCE.md.
//   node loadtest/auth-verify-cost.ts [--count N] [--alg HS256 --alg RS256 ...]
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SignJWT } from 'jose';
import { createAuthorizer } from '../services/server/src/auth/access.ts';
import { JwtVerifier } from '../services/server/src/auth/jwt-verify.ts';
import { buildServerConfig } from '../services/server/src/config.ts';
import {
  importKeySet,
  type JwtKeySources,
  readKeySpecs,
} from '../services/server/src/keys/jwt-keys.ts';
import { integerFlag, parseFlags } from '../services/shared/cli.ts';

const ALGS = ['HS256', 'RS256', 'ES256', 'EdDSA'] as const;

const { values } = parseFlags(process.argv.slice(2), {
  count: { type: 'string' },
  alg: { type: 'string', multiple: true },
});
const count = integerFlag('--count', values.count, 100, 1_000_000) ?? 10_000;
const algs = values.alg ?? [...ALGS];

/** A signing key and the auth.jwt config that verifies it (a PEM file for public keys). */
function keyFor(alg: string, dir: string): { sign: KeyObject | Uint8Array; jwt: JwtKeySources } {
  if (alg.startsWith('HS')) {
    const secret = randomBytes(48).toString('base64');
    return {
      sign: new TextEncoder().encode(secret),
      jwt: { secret, publicKeys: '', jwksFile: '' },
    };
  }
  const pair =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const file = join(dir, `${alg}.pem`);
  writeFileSync(file, pair.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  return { sign: pair.privateKey, jwt: { secret: '', publicKeys: file, jwksFile: '' } };
}

const quantile = (sorted: Float64Array, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

async function measure(run: () => Promise<unknown>): Promise<Float64Array> {
  for (let i = 0; i < Math.min(1000, count); i++) await run();
  const times = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await run();
    times[i] = performance.now() - start;
  }
  return times.sort();
}

const rows: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'http-sse-auth-cost-'));
try {
  for (const alg of algs) {
    const { sign, jwt } = keyFor(alg, dir);
    const keys = await importKeySet(readKeySpecs(jwt));
    const verifier = new JwtVerifier(() => keys, {
      issuer: '',
      audience: '',
      clockToleranceSec: 30,
    });
    const token = await new SignJWT({ sse: { subscribe: ['orders.*'] } })
      .setProtectedHeader({ alg })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(sign);
    const check = await verifier.verify(token);
    if (!check.ok) throw new Error(`${alg}: the token does not verify (${check.reason})`);
    const verify = await measure(() => verifier.verify(token));
    // The whole decision the routes will ask for, configured as the server would be.
    const authz = await createAuthorizer(buildServerConfig({ auth: { jwt } }), {
      watchKeys: false,
      reloadOnSighup: false,
    });
    const req = { headers: { authorization: `Bearer ${token}` }, url: '/sse/channels/orders.1' };
    const decision = await authz.authorize('subscribe', 'orders.1', req);
    if (decision.kind !== 'allowed') throw new Error(`${alg}: ${JSON.stringify(decision)}`);
    const whole = await measure(async () => authz.authorize('subscribe', 'orders.1', req));
    authz.close();
    const mean = verify.reduce((a, b) => a + b, 0) / count;
    rows.push(
      `| ${alg} | ${us(quantile(verify, 0.5))} | ${us(quantile(verify, 0.99))} | ${Math.round(1000 / mean).toLocaleString('en')} | ${us(quantile(whole, 0.5))} |`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

process.stdout.write(
  [
    `Token verification cost, ${count.toLocaleString('en')} sequential verifications per algorithm`,
    `(Node ${process.version}, ${process.arch}; RSA 2048, EC P-256, Ed25519):`,
    '',
    '| alg | verify p50 | verify p99 | one after another, per s | authorize() p50 |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n'),
);
