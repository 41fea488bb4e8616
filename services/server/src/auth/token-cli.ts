// npm run token -- --subscribe 'orders.*' --publish 'orders.*' --ttl 1h [--sub alice]
// Prints a signed token for trying http-sse out, signed with the configured secret (HS256 unless
// --alg says HS384/HS512) or with --key-file's private key, carrying the configured issuer and
// audience. Reads the server config as the server does (config/server.yaml or SSE_CONFIG, then the
// environment). Exit codes: 0 printed; 2 bad flags or config (one line on stderr); 1 anything else.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type JWK, type JWTPayload, SignJWT } from 'jose';
import { parseFlags, UsageError } from '../../../shared/cli.ts';
import { ConfigError } from '../../../shared/config-file.ts';
import { isValidPattern, PATTERN_RULE } from '../channel-names.ts';
import { loadServerConfig, type ServerConfig } from '../config.ts';
import {
  algorithmsOf,
  HMAC_ALGORITHMS,
  JwtKeyStore,
  KeyFileError,
  parseJwks,
  readKeyFile,
} from '../keys/jwt-keys.ts';
import { JwtVerifier } from './jwt-verify.ts';

export const TOKEN_USAGE = `Usage: npm run token -- [options]
Prints a signed token (JWT) for http-sse, valid for the channels given.

  --subscribe PATTERN  a channel it may subscribe to: a name, or name* for every channel
                       starting with name ("orders.*", "*"); repeatable
  --publish PATTERN    a channel it may publish on (same patterns); repeatable
  --ttl DURATION       lifetime: 90s, 15m, 1h, 7d or a number of seconds (default 1h, at most 365d)
  --sub NAME           the subject (sub claim)
  --key-file FILE      sign with this PEM private key (RSA, EC P-256/384/521, Ed25519) instead of
                       auth.jwt.secret
  --alg ALG            the algorithm (default HS256 with the secret, else RS256, ES256..512, EdDSA
                       by the key)
  --kid KID            the key id for the header (default with --key-file: the kid of the same
                       key in auth.jwt.jwksFile, if it is there)
  -h, --help           this text

The secret, issuer and audience come from the server config: config/server.yaml (or SSE_CONFIG)
and the environment (SSE_JWT_SECRET, SSE_JWT_ISSUER, SSE_JWT_AUDIENCE, ...).`;

const MAX_TTL_SEC = 365 * 24 * 3600;
const UNIT_SEC: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** A lifetime flag in seconds: 90s, 15m, 1h, 7d or plain seconds. */
export function ttlSeconds(raw: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(raw);
  const seconds = m ? Number(m[1]) * UNIT_SEC[m[2] || 's']! : 0;
  if (seconds < 1 || seconds > MAX_TTL_SEC) {
    throw new UsageError(
      `--ttl needs a duration like 90s, 15m, 1h or 7d (1 s to 365 d), got ${JSON.stringify(raw)}`,
    );
  }
  return seconds;
}

function patternsFlag(flag: string, raws: string[] | undefined): string[] | undefined {
  for (const raw of raws ?? []) {
    if (!isValidPattern(raw))
      throw new UsageError(`${flag} ${JSON.stringify(raw)}: ${PATTERN_RULE}`);
  }
  return raws;
}

interface SigningKey {
  key: KeyObject | Uint8Array;
  alg: string;
  kid: string | undefined;
}

/** Does this public JWK describe the same key as `pub`? */
function sameKey(jwk: JWK, pub: JWK): boolean {
  return (
    jwk.kty === pub.kty &&
    jwk.n === pub.n &&
    jwk.e === pub.e &&
    jwk.crv === pub.crv &&
    jwk.x === pub.x &&
    jwk.y === pub.y
  );
}

/** The kid the configured JWKS gives this key for `alg`, if it holds the key. */
function kidInJwks(config: ServerConfig, publicKey: KeyObject, alg: string): string | undefined {
  if (config.auth.jwt.jwksFile === '') return undefined;
  const pub = publicKey.export({ format: 'jwk' }) as JWK;
  try {
    for (const spec of readKeyFile(config.auth.jwt.jwksFile, parseJwks)) {
      if (spec.material.type !== 'jwk' || spec.kid === null) continue;
      if (spec.algorithms.includes(alg) && sameKey(spec.material.jwk, pub)) return spec.kid;
    }
  } catch {
    // An unreadable set: no kid to find (the server would say more at start).
  }
  return undefined;
}

function signingKey(
  config: ServerConfig,
  keyFile: string | undefined,
  alg: string | undefined,
  kid: string | undefined,
): SigningKey {
  if (keyFile === undefined) {
    const secret = config.auth.jwt.secret;
    if (secret === '') {
      throw new UsageError(
        'no key to sign with: set auth.jwt.secret (SSE_JWT_SECRET) or give --key-file <private key PEM>',
      );
    }
    const chosen = alg ?? 'HS256';
    if (!HMAC_ALGORITHMS.includes(chosen)) {
      throw new UsageError(`--alg ${chosen} does not go with the secret: HS256, HS384 or HS512`);
    }
    return { key: new TextEncoder().encode(secret), alg: chosen, kid };
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(keyFile, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code?.startsWith('E') && !code.startsWith('ERR_') ? code : 'not a PEM private key';
    throw new UsageError(`--key-file ${keyFile}: cannot use it (${why})`);
  }
  const publicKey = createPublicKey(privateKey);
  let algorithms: readonly string[];
  try {
    algorithms = algorithmsOf(publicKey, `--key-file ${keyFile}`);
  } catch (err) {
    if (err instanceof KeyFileError) throw new UsageError(err.message);
    throw err;
  }
  const chosen = alg ?? algorithms[0]!;
  if (!algorithms.includes(chosen)) {
    throw new UsageError(`--alg ${chosen} does not go with this key: ${algorithms.join(', ')}`);
  }
  return { key: privateKey, alg: chosen, kid: kid ?? kidInJwks(config, publicKey, chosen) };
}

/** Checks the token against the server's configured keys: a reason when they would refuse it. */
async function refusalByServer(config: ServerConfig, token: string): Promise<string | null> {
  const { secret, publicKeys, jwksFile, issuer, audience, clockToleranceSec } = config.auth.jwt;
  if (secret === '' && publicKeys === '' && jwksFile === '') {
    return 'no token key is configured for the server (auth.jwt.*), so it does not check tokens';
  }
  const store = await JwtKeyStore.open(
    { secret, publicKeys, jwksFile },
    { watch: false, sighup: false },
  );
  try {
    const result = await new JwtVerifier(() => store.keys, {
      issuer,
      audience,
      clockToleranceSec,
    }).verify(token);
    return result.ok ? null : `the server's configured keys would refuse it (${result.reason})`;
  } finally {
    store.close();
  }
}

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Runs the CLI; resolves to the exit code. */
export async function runTokenCli(
  argv: string[],
  env: Record<string, string | undefined>,
  io: CliIo,
): Promise<number> {
  try {
    const { values } = parseFlags(argv, {
      subscribe: { type: 'string', multiple: true },
      publish: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      sub: { type: 'string' },
      'key-file': { type: 'string' },
      alg: { type: 'string' },
      kid: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help) {
      io.out(`${TOKEN_USAGE}\n`);
      return 0;
    }
    const subscribe = patternsFlag('--subscribe', values.subscribe);
    const publish = patternsFlag('--publish', values.publish);
    if (subscribe === undefined && publish === undefined) {
      throw new UsageError(
        'give --subscribe or --publish (or both): a token for no channel is no use',
      );
    }
    const ttl = ttlSeconds(values.ttl ?? '1h');
    for (const [flag, value] of [
      ['--sub', values.sub],
      ['--kid', values.kid],
      ['--key-file', values['key-file']],
    ] as const) {
      if (value === '') throw new UsageError(`${flag} needs a value`);
    }
    const config = loadServerConfig(env);
    const signer = signingKey(config, values['key-file'], values.alg, values.kid);
    const sse: Record<string, string[]> = {};
    if (subscribe !== undefined) sse.subscribe = subscribe;
    if (publish !== undefined) sse.publish = publish;
    const claims: JWTPayload = { sse };
    if (values.sub !== undefined) claims.sub = values.sub;
    const { issuer, audience } = config.auth.jwt;
    if (issuer !== '') claims.iss = issuer;
    if (audience !== '') claims.aud = audience;
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({
        alg: signer.alg,
        typ: 'JWT',
        ...(signer.kid === undefined ? {} : { kid: signer.kid }),
      })
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .sign(signer.key);
    io.out(`${token}\n`);
    const refusal = await refusalByServer(config, token);
    if (refusal !== null) io.err(`http-sse token: warning: ${refusal}\n`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`http-sse token: ${err.message} (see --help)\n`);
      return 2;
    }
    io.err(`http-sse token: ${(err as Error).message}\n`);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await runTokenCli(process.argv.slice(2), process.env, {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  });
}
