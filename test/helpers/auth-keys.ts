// Keys, key files and tokens for the auth tests: key pairs of each kind, PEM and JWKS files in a
// temporary directory, tokens signed with jose, and hand-made ones (unsigned, forged).
import {
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as signBytes,
} from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JWK, type JWTPayload, SignJWT } from 'jose';
import { buildServerConfig, type ServerConfig } from '../../services/server/src/config.ts';

export type KeyKind = 'rsa' | 'ec' | 'ed25519';

export interface TestKeyPair {
  kind: KeyKind;
  /** The algorithm tests sign with by default. */
  alg: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  privatePem: string;
  /** The public JWK (no kid, no alg). */
  publicJwk: JWK;
}

const DEFAULT_ALG: Record<KeyKind, string> = { rsa: 'RS256', ec: 'ES256', ed25519: 'EdDSA' };

export function keyPair(kind: KeyKind): TestKeyPair {
  const { privateKey, publicKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : kind === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return {
    kind,
    alg: DEFAULT_ALG[kind],
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicJwk: publicKey.export({ format: 'jwk' }) as JWK,
  };
}

/** A 48-byte random secret, base64 (64 characters). */
export const newSecret = () => randomBytes(48).toString('base64');

export const nowSec = () => Math.floor(Date.now() / 1000);

export interface SignOptions {
  alg?: string;
  kid?: string;
  /** Seconds from now; null: no exp claim. Default 3600. */
  ttl?: number | null;
}

/** A token signed with jose: `claims` plus `exp` (unless ttl is null) and `iat`. */
export async function signToken(
  key: KeyObject | Uint8Array | string,
  claims: JWTPayload,
  options: SignOptions = {},
): Promise<string> {
  const secret = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  const alg = options.alg ?? (secret instanceof Uint8Array ? 'HS256' : undefined);
  if (alg === undefined) throw new Error('signToken: alg needed for a key object');
  const ttl = options.ttl === undefined ? 3600 : options.ttl;
  const payload: JWTPayload = { iat: nowSec(), ...claims };
  if (ttl !== null && payload.exp === undefined) payload.exp = nowSec() + ttl;
  const jwt = new SignJWT(payload).setProtectedHeader(
    options.kid === undefined ? { alg } : { alg, kid: options.kid },
  );
  return jwt.sign(secret);
}

const b64url = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** header.payload with no signature (`alg: none` style when the header says so). */
export function unsignedToken(header: object, payload: object, signature = ''): string {
  return `${b64url(header)}.${b64url(payload)}.${signature}`;
}

/** An HS256 token whose HMAC key is the given bytes (e.g. a public key's PEM text). */
export function hmacToken(header: object, payload: object | string, key: string | Buffer): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const mac = createHmac(`sha${String((header as { alg?: string }).alg ?? 'HS256').slice(2)}`, key)
    .update(input)
    .digest('base64url');
  return `${input}.${mac}`;
}

/** A token with an asymmetric signature made by node:crypto (for hand-made headers). */
export function rawSignedToken(header: object, payload: object, key: TestKeyPair): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const algorithm = key.kind === 'ed25519' ? null : 'sha256';
  const sig = signBytes(algorithm, Buffer.from(input), {
    key: key.privateKey,
    ...(key.kind === 'ec' ? { dsaEncoding: 'ieee-p1363' as const } : {}),
  });
  return `${input}.${sig.toString('base64url')}`;
}

/** A temporary directory, removed by the returned function. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'http-sse-auth-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a file whole, by rename, the way a deploy tool replaces it. */
export function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** A JWKS document of public keys with the given kids (and their algorithm). */
export function jwks(...keys: { pair: TestKeyPair; kid: string; alg?: string }[]): string {
  return JSON.stringify({
    keys: keys.map(({ pair, kid, alg }) => ({
      ...pair.publicJwk,
      kid,
      use: 'sig',
      alg: alg ?? pair.alg,
    })),
  });
}

/** A server config for the auth tests (defaults plus the given auth and token settings). */
export function authConfig(
  auth: { publicChannels?: string[]; jwt?: Record<string, unknown> } = {},
  tokens: { subscribe?: string; publish?: string } = {},
): ServerConfig {
  return buildServerConfig({
    auth,
    subscribe: { token: tokens.subscribe ?? '' },
    publish: { token: tokens.publish ?? '' },
  });
}
