// The keys that verify signed tokens, from config: the shared secret (auth.jwt.secret: HS256,
// HS384, HS512), a PEM file of public keys (auth.jwt.publicKeys: RSA for RS*/PS*, EC P-256/384/521
// for ES256/384/512, Ed25519 for EdDSA) and a JWKS file (auth.jwt.jwksFile, keys selected by
// `kid`). Every key is imported once (at start and at each reload) into a CryptoKey per algorithm
// it serves; the algorithms of those keys are the only ones accepted, so `none` never is, and an
// HMAC algorithm only ever meets the configured secret, never a public key.
//
// The files are re-read on reload(): on SIGHUP and when a file changes (fs.watch of its directory,
// so replacing the file or a symlink swap is seen too; debounced). A file that no longer reads as
// keys keeps the previous keys in use, and an error is logged.
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { importJWK, importSPKI, type JWK } from 'jose';
import type { Logger } from '../logger.ts';

export class KeyFileError extends Error {
  override name = 'KeyFileError';
  /** The file at fault, when a file is. */
  readonly file: string | undefined;

  constructor(message: string, file?: string) {
    super(message);
    this.file = file;
  }
}

export const HMAC_ALGORITHMS: readonly string[] = ['HS256', 'HS384', 'HS512'];
const RSA_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC_ALGORITHMS: Readonly<Record<string, string>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};
const ED25519_ALGORITHMS: readonly string[] = ['EdDSA', 'Ed25519'];
export const MIN_SECRET_BYTES = 32;
const MIN_RSA_BITS = 2048;

/** Where the keys come from: the config's auth.jwt values (empty = not used). */
export interface JwtKeySources {
  secret: string;
  publicKeys: string;
  jwksFile: string;
}

type KeyMaterial =
  | { type: 'secret'; bytes: Uint8Array }
  | { type: 'spki'; pem: string }
  | { type: 'jwk'; jwk: JWK };

/** A key as read, before import: its origin, `kid`, and the algorithms it verifies. */
export interface KeySpec {
  from: 'secret' | 'pem' | 'jwks';
  kid: string | null;
  algorithms: readonly string[];
  material: KeyMaterial;
}

/** One imported key for one algorithm. */
export interface KeyEntry {
  from: KeySpec['from'];
  kid: string | null;
  alg: string;
  key: CryptoKey;
}

/** The keys in use: every (key, algorithm) pair, and the allow-list of algorithms they make. */
export interface KeySet {
  readonly entries: readonly KeyEntry[];
  readonly algorithms: ReadonlySet<string>;
}

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];

/** Why a secret cannot be used, or null. */
export function secretProblem(secret: string): string | null {
  const bytes = Buffer.byteLength(secret, 'utf8');
  return bytes < MIN_SECRET_BYTES
    ? `must be at least ${MIN_SECRET_BYTES} bytes (it has ${bytes}); make one with: openssl rand -base64 48`
    : null;
}

/** The JWS algorithms a public key can verify; throws KeyFileError for keys we cannot use. */
export function algorithmsOf(key: KeyObject, where: string): readonly string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) {
        throw new KeyFileError(`${where}: an RSA key of ${bits} bits; at least 2048 are needed`);
      }
      return RSA_ALGORITHMS;
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
      const alg = EC_ALGORITHMS[curve];
      if (alg === undefined) {
        throw new KeyFileError(
          `${where}: an EC key on curve ${curve}; P-256, P-384 and P-521 are supported`,
        );
      }
      return [alg];
    }
    case 'ed25519':
      return ED25519_ALGORITHMS;
    case 'rsa-pss':
      throw new KeyFileError(
        `${where}: an RSA-PSS-only key (id-RSASSA-PSS); export it as a plain RSA public key (rsaEncryption), which serves PS256 too`,
      );
    default:
      throw new KeyFileError(
        `${where}: a ${key.asymmetricKeyType ?? 'non-asymmetric'} key; RSA, EC (P-256/384/521) and Ed25519 are supported`,
      );
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The public keys of a PEM file (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE blocks). */
export function parsePemKeys(text: string): KeySpec[] {
  const specs: KeySpec[] = [];
  let n = 0;
  for (const match of text.matchAll(PEM_BLOCK)) {
    n++;
    const label = match[1]!;
    const where = `PEM block ${n} (${label})`;
    if (label.includes('PRIVATE')) {
      throw new KeyFileError(
        `${where}: a private key; give the public key only (openssl pkey -in key.pem -pubout)`,
      );
    }
    let key: KeyObject;
    try {
      if (label === 'CERTIFICATE') key = new X509Certificate(match[0]).publicKey;
      else if (label === 'PUBLIC KEY' || label === 'RSA PUBLIC KEY')
        key = createPublicKey(match[0]);
      else throw new Error('expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE');
    } catch (err) {
      throw new KeyFileError(`${where}: not a usable public key (${firstLine(err)})`);
    }
    const algorithms = algorithmsOf(key, where);
    const pem = key.export({ type: 'spki', format: 'pem' }).toString();
    specs.push({ from: 'pem', kid: null, algorithms, material: { type: 'spki', pem } });
  }
  if (specs.length === 0) {
    throw new KeyFileError('no PEM public key in the file (expected -----BEGIN PUBLIC KEY-----)');
  }
  return specs;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The signature keys of a JWKS file ({"keys": [...]}). Keys marked for encryption (`use: "enc"`,
 * or `key_ops` without "verify") are skipped; symmetric and private keys are refused, and so is a
 * set with no signature key at all.
 */
export function parseJwks(text: string): KeySpec[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError(`not JSON (${firstLine(err)})`);
  }
  if (!isObject(doc) || !Array.isArray(doc.keys)) {
    throw new KeyFileError('not a JWKS: expected {"keys": [...]}');
  }
  const specs: KeySpec[] = [];
  const seen = new Set<string>();
  doc.keys.forEach((jwk: unknown, i: number) => {
    if (!isObject(jwk)) throw new KeyFileError(`key ${i}: not a JSON object`);
    const kid = jwk.kid;
    const where = typeof kid === 'string' ? `key ${i} (kid ${JSON.stringify(kid)})` : `key ${i}`;
    if (kid !== undefined && typeof kid !== 'string') {
      throw new KeyFileError(`${where}: "kid" must be a string`);
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') return;
    if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) return;
    if (jwk.kty === 'oct') {
      throw new KeyFileError(
        `${where}: a symmetric ("oct") key; a shared secret belongs in auth.jwt.secret`,
      );
    }
    if ('d' in jwk || 'priv' in jwk) {
      throw new KeyFileError(`${where}: a private key; publish only its public part`);
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch (err) {
      throw new KeyFileError(`${where}: not a usable public key (${firstLine(err)})`);
    }
    let algorithms = algorithmsOf(key, where);
    if (jwk.alg !== undefined) {
      if (typeof jwk.alg !== 'string' || !algorithms.includes(jwk.alg)) {
        throw new KeyFileError(
          `${where}: "alg" ${JSON.stringify(jwk.alg)} does not fit this key (it can do ${algorithms.join(', ')})`,
        );
      }
      algorithms = [jwk.alg];
    }
    if (typeof kid === 'string') {
      for (const alg of algorithms) {
        const id = `${alg} ${kid}`;
        if (seen.has(id)) throw new KeyFileError(`${where}: a second ${alg} key with this kid`);
        seen.add(id);
      }
    }
    specs.push({
      from: 'jwks',
      kid: typeof kid === 'string' ? kid : null,
      algorithms,
      // The public members only, as node exports them (no use/key_ops/ext to trip the import).
      material: { type: 'jwk', jwk: key.export({ format: 'jwk' }) as JWK },
    });
  });
  if (specs.length === 0) {
    throw new KeyFileError('no signature key in the set (it would refuse every token)');
  }
  return specs;
}

/** Reads and parses a key file; a failure is a KeyFileError naming the file. */
export function readKeyFile(file: string, parse: (text: string) => KeySpec[]): KeySpec[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyFileError(`cannot read the file (${code ?? firstLine(err)})`, file);
  }
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof KeyFileError) throw new KeyFileError(err.message, file);
    throw err;
  }
}

/** Why a PEM key file cannot be used, or null (for config validation). */
export function pemFileProblem(file: string): string | null {
  return problemOf(() => readKeyFile(file, parsePemKeys));
}

/** Why a JWKS file cannot be used, or null (for config validation). */
export function jwksFileProblem(file: string): string | null {
  return problemOf(() => readKeyFile(file, parseJwks));
}

function problemOf(read: () => unknown): string | null {
  try {
    read();
    return null;
  } catch (err) {
    if (err instanceof KeyFileError) return err.message;
    throw err;
  }
}

/** Every configured key, read now (files from disk); throws KeyFileError. */
export function readKeySpecs(sources: JwtKeySources): KeySpec[] {
  const specs: KeySpec[] = [];
  if (sources.secret !== '') {
    const problem = secretProblem(sources.secret);
    if (problem !== null) throw new KeyFileError(`auth.jwt.secret ${problem}`);
    specs.push({
      from: 'secret',
      kid: null,
      algorithms: HMAC_ALGORITHMS,
      material: { type: 'secret', bytes: new TextEncoder().encode(sources.secret) },
    });
  }
  if (sources.publicKeys !== '') specs.push(...readKeyFile(sources.publicKeys, parsePemKeys));
  if (sources.jwksFile !== '') specs.push(...readKeyFile(sources.jwksFile, parseJwks));
  return specs;
}

async function importOne(material: KeyMaterial, alg: string): Promise<CryptoKey> {
  switch (material.type) {
    case 'secret':
      return crypto.subtle.importKey(
        'raw',
        material.bytes as Uint8Array<ArrayBuffer>,
        { name: 'HMAC', hash: `SHA-${alg.slice(2)}` },
        false,
        ['verify'],
      );
    case 'spki':
      return importSPKI(material.pem, alg);
    case 'jwk':
      return (await importJWK(material.jwk, alg)) as CryptoKey;
  }
}

/** Imports every key once per algorithm it serves. */
export async function importKeySet(specs: readonly KeySpec[]): Promise<KeySet> {
  const entries: KeyEntry[] = [];
  for (const spec of specs) {
    for (const alg of spec.algorithms) {
      entries.push({
        from: spec.from,
        kid: spec.kid,
        alg,
        key: await importOne(spec.material, alg),
      });
    }
  }
  return { entries, algorithms: new Set(entries.map((e) => e.alg)) };
}

export interface JwtKeyStoreOptions {
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Re-read the files when they change (default true). */
  watch?: boolean;
  /** Re-read the files on SIGHUP (default true; only when a key file is configured). */
  sighup?: boolean;
  /** Quiet time after the last change event before the files are read (default 250 ms). */
  debounceMs?: number;
}

/** A summary of a key set for logs: never key material. */
function describe(set: KeySet): { keys: number; kids: string[]; algorithms: string[] } {
  const kids = new Set<string>();
  for (const e of set.entries) if (e.kid !== null) kids.add(e.kid);
  return { keys: set.entries.length, kids: [...kids], algorithms: [...set.algorithms] };
}

/** The key set in use, swapped whole on each successful reload. */
export class JwtKeyStore {
  private readonly sources: JwtKeySources;
  private readonly options: JwtKeyStoreOptions;
  private current: KeySet;
  private chain: Promise<boolean> = Promise.resolve(true);
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** The text of each file as last read, to tell a real change from other files' events. */
  private readonly seen = new Map<string, string | null>();
  private readonly onHup = () => {
    this.options.logger?.info({ event: 'auth_keys_sighup' }, 'SIGHUP: re-reading the token keys');
    void this.reload();
  };
  private closed = false;

  private constructor(sources: JwtKeySources, options: JwtKeyStoreOptions, keys: KeySet) {
    this.sources = sources;
    this.options = options;
    this.current = keys;
  }

  /** Reads and imports the keys (a KeyFileError if they cannot be used), then starts watching. */
  static async open(
    sources: JwtKeySources,
    options: JwtKeyStoreOptions = {},
  ): Promise<JwtKeyStore> {
    const files = [sources.publicKeys, sources.jwksFile].filter((f) => f !== '');
    const texts = files.map((f) => [f, readText(f)] as const);
    const store = new JwtKeyStore(sources, options, await importKeySet(readKeySpecs(sources)));
    for (const [file, text] of texts) store.seen.set(file, text);
    // Only files can change: with the secret alone there is nothing to watch or re-read.
    if (options.watch ?? true) for (const file of files) store.watchFile(file);
    if ((options.sighup ?? true) && files.length > 0) process.on('SIGHUP', store.onHup);
    return store;
  }

  /** The keys in use now. */
  get keys(): KeySet {
    return this.current;
  }

  /**
   * Re-reads every key file. Resolves true when the new keys are in use, false when they could
   * not be used (the previous keys stay, an error is logged). Reloads run one after another.
   */
  reload(): Promise<boolean> {
    this.chain = this.chain.then(() => this.load());
    return this.chain;
  }

  /** Stops watching the files and listening for SIGHUP. */
  close(): void {
    this.closed = true;
    process.off('SIGHUP', this.onHup);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async load(): Promise<boolean> {
    const log = this.options.logger;
    for (const file of [this.sources.publicKeys, this.sources.jwksFile]) {
      if (file !== '') this.seen.set(file, readText(file));
    }
    let next: KeySet;
    try {
      next = await importKeySet(readKeySpecs(this.sources));
    } catch (err) {
      const file = err instanceof KeyFileError ? err.file : undefined;
      log?.error(
        { event: 'auth_keys_reload_failed', file, error: firstLine(err) },
        'the token keys could not be re-read: the previous keys stay in use',
      );
      return false;
    }
    this.current = next;
    log?.info({ event: 'auth_keys_reloaded', ...describe(next) }, 'token keys re-read');
    return true;
  }

  private watchFile(file: string): void {
    const dir = dirname(resolve(file));
    try {
      const watcher = watch(dir, { persistent: false }, () => this.changed());
      watcher.on('error', (err) => {
        this.options.logger?.warn(
          { event: 'auth_keys_watch_failed', file, error: firstLine(err) },
          'stopped watching a key file: SIGHUP still re-reads it',
        );
      });
      this.watchers.push(watcher);
    } catch (err) {
      this.options.logger?.warn(
        { event: 'auth_keys_watch_failed', file, error: firstLine(err) },
        'cannot watch a key file: SIGHUP still re-reads it',
      );
    }
  }

  /** Something in a watched directory changed: after a quiet spell, reload if a file did. */
  private changed(): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      const files = [this.sources.publicKeys, this.sources.jwksFile].filter((f) => f !== '');
      if (files.some((f) => readText(f) !== this.seen.get(f))) void this.reload();
    }, this.options.debounceMs ?? 250);
    this.timer.unref();
  }
}

/** A file's text, or null when it cannot be read now. */
function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
