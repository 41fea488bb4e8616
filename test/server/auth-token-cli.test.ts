// npm run token: a token it prints verifies with the server's configured keys (a secret, a PEM
// public key, a JWKS file whose kid it finds by itself) and covers exactly the patterns given;
// the config is read as the server reads it; bad flags are one line on stderr and exit 2.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createAuthorizer } from '../../services/server/src/auth/access.ts';
import { runTokenCli, ttlSeconds } from '../../services/server/src/auth/token-cli.ts';
import { loadServerConfig } from '../../services/server/src/config.ts';
import { jwks, keyPair, newSecret, tempDir } from '../helpers/auth-keys.ts';
import { runNode } from '../helpers/process.ts';

let dir: string;
let remove: () => void;
before(() => {
  ({ dir, remove } = tempDir());
});
after(() => remove());

/** Runs the CLI in this process with only `env` as the environment. */
async function run(argv: string[], env: Record<string, string>) {
  let out = '';
  let err = '';
  const code = await runTokenCli(
    argv,
    { SSE_CONFIG: '', ...env },
    {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
    },
  );
  return { code, out, err };
}

/** What the server configured by `env` decides for the token. */
async function decide(
  env: Record<string, string>,
  token: string,
  op: 'subscribe' | 'publish',
  channel: string,
) {
  const authz = await createAuthorizer(loadServerConfig(env), {
    watchKeys: false,
    reloadOnSighup: false,
  });
  try {
    return await authz.authorize(op, channel, { headers: { authorization: `Bearer ${token}` } });
  } finally {
    authz.close();
  }
}

test('with the configured secret: HS256, the patterns, sub, iss, aud and the lifetime', async () => {
  const env = {
    SSE_JWT_SECRET: newSecret(),
    SSE_JWT_ISSUER: 'iss.test',
    SSE_JWT_AUDIENCE: 'aud.test',
  };
  const r = await run(
    [
      '--subscribe',
      'orders.*',
      '--subscribe',
      'news',
      '--publish',
      'orders.eu',
      '--ttl',
      '15m',
      '--sub',
      'alice',
    ],
    env,
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const token = r.out.trim();
  assert.match(r.out, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  assert.deepEqual(decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' });
  const claims = decodeJwt(token);
  assert.deepEqual(claims.sse, { subscribe: ['orders.*', 'news'], publish: ['orders.eu'] });
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.iss, 'iss.test');
  assert.equal(claims.aud, 'aud.test');
  assert.equal(claims.exp! - claims.iat!, 900);
  assert.equal((await decide(env, token, 'subscribe', 'orders.1')).kind, 'allowed');
  assert.equal((await decide(env, token, 'subscribe', 'news')).kind, 'allowed');
  assert.equal((await decide(env, token, 'publish', 'orders.eu')).kind, 'allowed');
  const refused = await decide(env, token, 'publish', 'orders.us');
  assert.ok(refused.kind === 'refused' && refused.status === 403);
  // HS512 on request.
  const r512 = await run(['--publish', '*', '--alg', 'HS512'], env);
  assert.equal(decodeProtectedHeader(r512.out.trim()).alg, 'HS512');
  assert.equal((await decide(env, r512.out.trim(), 'publish', 'x')).kind, 'allowed');
});

test('--key-file: RSA against a PEM public key, Ed25519 against a JWKS (kid found)', async () => {
  const rsa = keyPair('rsa');
  const rsaKey = join(dir, 'rsa-private.pem');
  writeFileSync(rsaKey, rsa.privatePem);
  const pemEnv = { SSE_JWT_PUBLIC_KEY_FILE: join(dir, 'rsa-public.pem') };
  writeFileSync(pemEnv.SSE_JWT_PUBLIC_KEY_FILE, rsa.publicPem);
  for (const alg of [undefined, 'PS256']) {
    const r = await run(
      ['--subscribe', 'a', '--key-file', rsaKey, ...(alg ? ['--alg', alg] : [])],
      pemEnv,
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(decodeProtectedHeader(r.out.trim()).alg, alg ?? 'RS256');
    assert.equal((await decide(pemEnv, r.out.trim(), 'subscribe', 'a')).kind, 'allowed');
  }
  const ed = keyPair('ed25519');
  const edKey = join(dir, 'ed-private.pem');
  writeFileSync(edKey, ed.privatePem);
  const setEnv = { SSE_JWKS_FILE: join(dir, 'set.json') };
  writeFileSync(
    setEnv.SSE_JWKS_FILE,
    jwks({ pair: keyPair('ec'), kid: 'other' }, { pair: ed, kid: 'ed-2026' }),
  );
  const r = await run(['--subscribe', 'a', '--key-file', edKey], setEnv);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(decodeProtectedHeader(r.out.trim()), {
    alg: 'EdDSA',
    typ: 'JWT',
    kid: 'ed-2026',
  });
  assert.equal((await decide(setEnv, r.out.trim(), 'subscribe', 'a')).kind, 'allowed');
});

test('a key the server would not accept still prints the token, with a warning', async () => {
  const ec = keyPair('ec');
  const key = join(dir, 'stray.pem');
  writeFileSync(key, ec.privatePem);
  const r = await run(['--subscribe', 'a', '--key-file', key], { SSE_JWT_SECRET: newSecret() });
  assert.equal(r.code, 0);
  assert.match(r.out, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  assert.match(
    r.err,
    /^http-sse token: warning: the server's configured keys would refuse it \(bad_signature\)\n$/,
  );
});

test('the config file is read as the server reads it (SSE_CONFIG, then the environment)', async () => {
  const secret = newSecret();
  const file = join(dir, 'server.yaml');
  writeFileSync(file, `auth:\n  jwt:\n    secret: "${secret}"\n    issuer: from-file\n`);
  const r = await run(['--subscribe', 'a'], { SSE_CONFIG: file, SSE_JWT_ISSUER: 'from-env' });
  assert.equal(r.code, 0, r.err);
  assert.equal(decodeJwt(r.out.trim()).iss, 'from-env');
  const env = { SSE_CONFIG: file, SSE_JWT_ISSUER: 'from-env' };
  assert.equal((await decide(env, r.out.trim(), 'subscribe', 'a')).kind, 'allowed');
});

test('bad flags and config: one line on stderr, exit 2, nothing on stdout', async () => {
  const env = { SSE_JWT_SECRET: newSecret() };
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--subscribe', 'a b'], env, /--subscribe "a b": a channel pattern is/],
    [['--publish', 'a*b'], env, /--publish "a\*b"/],
    [[], env, /give --subscribe or --publish/],
    [['--subscribe', 'a', '--ttl', '0'], env, /--ttl needs a duration/],
    [['--subscribe', 'a', '--ttl', '1y'], env, /--ttl needs a duration/],
    [['--subscribe', 'a', '--ttl', '366d'], env, /--ttl needs a duration/],
    [['--subscribe', 'a', '--ttl'], env, /argument missing/],
    [['--subscribe', 'a', '--frobnicate'], env, /Unknown option '--frobnicate'/],
    [['--subscribe', 'a', 'extra'], env, /positional/],
    [['--subscribe', 'a', '--alg', 'RS256'], env, /--alg RS256 does not go with the secret/],
    [['--subscribe', 'a', '--sub', ''], env, /--sub needs a value/],
    [['--subscribe', 'a'], {}, /no key to sign with/],
    [['--subscribe', 'a', '--key-file', join(dir, 'missing.pem')], {}, /cannot use it \(ENOENT\)/],
    [['--subscribe', 'a'], { SSE_JWT_SECRET: 'short' }, /auth\.jwt\.secret = \[redacted\]/],
  ];
  for (const [argv, e, why] of cases) {
    const r = await run(argv, e);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    assert.equal(r.out, '');
    assert.match(r.err, /^http-sse token: [^\n]+\n$/, r.err);
    assert.match(r.err, why, r.err);
  }
  const pub = join(dir, 'public-only.pem');
  writeFileSync(pub, keyPair('ec').publicPem);
  const r = await run(['--subscribe', 'a', '--key-file', pub], {});
  assert.equal(r.code, 2);
  assert.match(r.err, /not a PEM private key/);
});

test('ttl: units and bounds', () => {
  assert.equal(ttlSeconds('90'), 90);
  assert.equal(ttlSeconds('90s'), 90);
  assert.equal(ttlSeconds('15m'), 900);
  assert.equal(ttlSeconds('1h'), 3600);
  assert.equal(ttlSeconds('365d'), 365 * 86400);
  for (const bad of ['', '0', '1.5h', '-1', 'h', '1 h', '1H', '9999999999']) {
    assert.throws(() => ttlSeconds(bad), /--ttl needs/, bad);
  }
});

test('as a process (npm run token): exit 0 with the token, exit 2 on a bad flag', async () => {
  const env = { SSE_CONFIG: '', SSE_JWT_SECRET: newSecret() };
  const ok = await runNode(['services/server/src/auth/token-cli.ts', '--subscribe', 'x.*'], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  assert.equal((await decide(env, ok.stdout.trim(), 'subscribe', 'x.1')).kind, 'allowed');
  const bad = await runNode(['services/server/src/auth/token-cli.ts', '--ttl', 'soon'], env);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr.split('\n').length, 2);
  const help = await runNode(['services/server/src/auth/token-cli.ts', '--help'], env);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: npm run token/);
});
