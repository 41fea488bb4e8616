// The auth config keys: defaults, environment variables, and start-up errors that name the key
// (a short secret, an unreadable or unusable PEM or JWKS file, a bad channel pattern), never
// showing a secret; config/server.yaml and the README document every key; logs censor tokens.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { loadServerConfig, serverEnv } from '../../services/server/src/config.ts';
import { createLogger } from '../../services/server/src/logger.ts';
import { AUTH_FAILURE_REASONS } from '../../services/server/src/metrics.ts';
import { ConfigError } from '../../services/shared/config-file.ts';
import { jwks, keyPair, newSecret, tempDir } from '../helpers/auth-keys.ts';
import { ROOT } from '../helpers/process.ts';

let dir: string;
let remove: () => void;
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
before(() => {
  ({ dir, remove } = tempDir());
});
after(() => remove());

/** The one-line config error for this environment. */
function configError(env: Record<string, string>): string {
  try {
    loadServerConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.doesNotMatch(err.message, /\n/);
    return err.message;
  }
  assert.fail(`no config error for ${JSON.stringify(env)}`);
}

test('defaults: no token keys, no public channels, cookie sse_token, 30 s tolerance', () => {
  const c = loadServerConfig({});
  assert.deepEqual(c.auth, {
    adminToken: '',
    publicChannels: [],
    jwt: {
      secret: '',
      publicKeys: '',
      jwksFile: '',
      issuer: '',
      audience: '',
      clockToleranceSec: 30,
      cookie: 'sse_token',
    },
  });
});

test('every key has its environment variable', () => {
  const secret = newSecret();
  const pem = file('env.pem', keyPair('ec').publicPem);
  const set = file('env.json', jwks({ pair: keyPair('ed25519'), kid: 'k' }));
  const c = loadServerConfig({
    SSE_PUBLIC_CHANNELS: 'lobby, public.*',
    SSE_JWT_SECRET: secret,
    SSE_JWT_PUBLIC_KEY_FILE: pem,
    SSE_JWKS_FILE: set,
    SSE_JWT_ISSUER: 'https://issuer.test',
    SSE_JWT_AUDIENCE: 'aud',
    SSE_JWT_CLOCK_TOLERANCE_SEC: '5',
    SSE_JWT_COOKIE: 'my_cookie',
    SSE_ADMIN_TOKEN: 'admin',
  });
  assert.deepEqual(c.auth, {
    adminToken: 'admin',
    publicChannels: ['lobby', 'public.*'],
    jwt: {
      secret,
      publicKeys: pem,
      jwksFile: set,
      issuer: 'https://issuer.test',
      audience: 'aud',
      clockToleranceSec: 5,
      cookie: 'my_cookie',
    },
  });
});

test('a secret under 32 bytes stops the start, naming the key but not the secret', () => {
  const message = configError({ SSE_JWT_SECRET: 'short-but-secret-value' });
  assert.match(
    message,
    /auth\.jwt\.secret = \[redacted\] \(from environment variable SSE_JWT_SECRET\)/,
  );
  assert.match(message, /at least 32 bytes \(it has 22\)/);
  assert.doesNotMatch(message, /short-but-secret-value/);
  // 32 bytes counted in UTF-8: 16 two-byte characters are enough.
  assert.equal(
    loadServerConfig({ SSE_JWT_SECRET: 'é'.repeat(16) }).auth.jwt.secret,
    'é'.repeat(16),
  );
  // The static tokens are not shown either.
  assert.doesNotMatch(configError({ SSE_PUBLISH_TOKEN: `s3cr3t${'x'.repeat(5000)}` }), /s3cr3t/);
});

test('a PEM file that cannot be used stops the start, naming the key and why', () => {
  const missing = join(dir, 'nope.pem');
  const cases: [string, RegExp][] = [
    [missing, /cannot read the file \(ENOENT\)/],
    [file('empty.pem', 'hello'), /no PEM public key in the file/],
    [file('private.pem', keyPair('ec').privatePem), /a private key; give the public key only/],
    [
      file(
        'small.pem',
        generateKeyPairSync('rsa', { modulusLength: 1024 })
          .publicKey.export({ type: 'spki', format: 'pem' })
          .toString(),
      ),
      /an RSA key of 1024 bits; at least 2048/,
    ],
    [
      file(
        'k1.pem',
        generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
          .publicKey.export({ type: 'spki', format: 'pem' })
          .toString(),
      ),
      /curve secp256k1/,
    ],
    [
      file('broken.pem', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'),
      /not a usable public key/,
    ],
  ];
  for (const [path, why] of cases) {
    const message = configError({ SSE_JWT_PUBLIC_KEY_FILE: path });
    assert.match(
      message,
      /auth\.jwt\.publicKeys = ".*" \(from environment variable SSE_JWT_PUBLIC_KEY_FILE\)/,
    );
    assert.match(message, why, message);
  }
});

test('a JWKS file that cannot be used stops the start, naming the key and why', () => {
  const ec = keyPair('ec');
  const cases: [string, RegExp][] = [
    [join(dir, 'nope.json'), /cannot read the file \(ENOENT\)/],
    [file('a.json', '{"keys": ['), /not JSON/],
    [file('b.json', '[]'), /not a JWKS/],
    [file('c.json', '{"keys": []}'), /no signature key/],
    [file('d.json', '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'), /symmetric \("oct"\) key/],
    [
      file('e.json', JSON.stringify({ keys: [ec.privateKey.export({ format: 'jwk' })] })),
      /a private key; publish only its public part/,
    ],
    [file('f.json', jwks({ pair: ec, kid: 'k', alg: 'RS256' })), /"alg" "RS256" does not fit/],
    [
      file('g.json', jwks({ pair: ec, kid: 'k' }, { pair: keyPair('ec'), kid: 'k' })),
      /second ES256 key with this kid/,
    ],
    [
      file('h.json', JSON.stringify({ keys: [{ ...ec.publicJwk, kid: 5 }] })),
      /"kid" must be a string/,
    ],
    [
      file('i.json', JSON.stringify({ keys: [{ ...ec.publicJwk, use: 'enc' }] })),
      /no signature key/,
    ],
  ];
  for (const [path, why] of cases) {
    const message = configError({ SSE_JWKS_FILE: path });
    assert.match(message, /auth\.jwt\.jwksFile = ".*" \(from environment variable SSE_JWKS_FILE\)/);
    assert.match(message, why, message);
  }
});

test('a public channel that is not a name or name* stops the start', () => {
  for (const bad of ['a*b', 'has space', '**', 'x'.repeat(129)]) {
    const message = configError({ SSE_PUBLIC_CHANNELS: `lobby,${bad}` });
    assert.match(
      message,
      /auth\.publicChannels = .* \(from environment variable SSE_PUBLIC_CHANNELS\)/,
    );
    assert.ok(message.includes(JSON.stringify(bad)), message);
    assert.match(message, /a channel pattern is a channel name/);
  }
});

test('issuer or audience without a key, a bad cookie name, a tolerance out of range', () => {
  assert.match(configError({ SSE_JWT_ISSUER: 'x' }), /auth\.jwt\.issuer = "x".*no token key is/);
  assert.match(configError({ SSE_JWT_AUDIENCE: 'x' }), /auth\.jwt\.audience = "x"/);
  assert.match(
    configError({ SSE_JWT_COOKIE: 'bad name' }),
    /auth\.jwt\.cookie = "bad name".*a cookie name/,
  );
  assert.match(configError({ SSE_JWT_CLOCK_TOLERANCE_SEC: '-1' }), /auth\.jwt\.clockToleranceSec/);
  assert.match(
    configError({ SSE_JWT_CLOCK_TOLERANCE_SEC: '3601' }),
    /auth\.jwt\.clockToleranceSec/,
  );
});

test('config/server.yaml and the README document every auth key and its variable', () => {
  const yaml = readFileSync(join(ROOT, 'config/server.yaml'), 'utf8');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const [name, binding] of Object.entries(serverEnv)) {
    if (!binding.key.startsWith('auth.')) continue;
    assert.ok(yaml.includes(name), `config/server.yaml lacks ${name}`);
    assert.ok(
      yaml.includes(`${binding.key.split('.').at(-1)}:`),
      `config/server.yaml lacks ${binding.key}`,
    );
    assert.ok(
      readme.includes(`| \`${binding.key}\` | \`${name}\``),
      `README's table lacks ${binding.key}`,
    );
  }
});

test('docs/METRICS.md and the README list sse_auth_failures_total with every reason', () => {
  for (const doc of ['docs/METRICS.md', 'README.md']) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    const row = text
      .split('\n')
      .find((l) => l.startsWith('| `sse_auth_failures_total` | counter | `reason` |'));
    assert.ok(row, `${doc} has no row for sse_auth_failures_total`);
    for (const reason of AUTH_FAILURE_REASONS)
      assert.ok(row.includes(`\`${reason}\``), `${doc}: ${reason}`);
  }
});

test('logs censor tokens, cookies and secrets wherever the new fields put them', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = createLogger('info', sink);
  logger.info({
    access_token: 'LEAK-1',
    req: {
      headers: { authorization: 'Bearer LEAK-2', cookie: 'sse_token=LEAK-3' },
      access_token: 'LEAK-4',
    },
    cookie: 'LEAK-5',
    secret: 'LEAK-6',
    auth: { jwt: { secret: 'LEAK-7' } },
    config: { auth: { jwt: { secret: 'LEAK-8' } } },
  });
  const out = lines.join('');
  for (let i = 1; i <= 8; i++) assert.doesNotMatch(out, new RegExp(`LEAK-${i}`), out);
  assert.match(out, /\[redacted\]/);
});
