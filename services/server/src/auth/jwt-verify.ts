// Verifies a signed token (JWT in JWS compact form) with jose against the keys in use, and says
// either what it claims or why it is refused. Never throws: every failure is one reason.
//
// The key is chosen before jose sees the token: the header's `alg` must be one the configured
// keys serve (so `alg: none`, or HS256 where only public keys are configured, fail here as
// bad_signature), then `kid` picks JWKS keys of that algorithm; a token without a matching kid is
// tried with the keys that have no kid (the secret, the PEM keys), and without a kid at all with
// the only key of its algorithm. `exp` is required; `nbf` and a future `iat` make a token not yet
// valid; `iss` and `aud` are checked when configured; clocks may differ by the tolerance.
import { decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import type { KeyEntry, KeySet } from '../keys/jwt-keys.ts';

export type VerifyFailure =
  | 'malformed'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'unknown_kid';

export type VerifyResult =
  | { ok: true; claims: JWTPayload /** `exp` in ms since the epoch. */; expiresAt: number }
  | { ok: false; reason: VerifyFailure };

export interface JwtVerifyOptions {
  /** Expected `iss`; empty: not checked. */
  issuer: string;
  /** Expected `aud` (one of the token's audiences); empty: not checked. */
  audience: string;
  clockToleranceSec: number;
  /** The clock, ms since the epoch (tests); default Date.now. */
  now?: () => number;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

const fail = (reason: VerifyFailure): VerifyResult => ({ ok: false, reason });

/** The keys to try for a header, or a failure. */
function candidates(
  keys: KeySet,
  alg: string,
  kid: string | undefined,
): KeyEntry[] | VerifyFailure {
  if (!keys.algorithms.has(alg)) return 'bad_signature';
  const ofAlg = keys.entries.filter((e) => e.alg === alg);
  if (kid !== undefined) {
    const named = ofAlg.filter((e) => e.kid === kid);
    if (named.length > 0) return named;
  }
  const unnamed = ofAlg.filter((e) => e.kid === null);
  if (unnamed.length > 0) return unnamed;
  // No key without a kid: a token without one can only mean the single key of its algorithm.
  if (kid === undefined && ofAlg.length === 1) return ofAlg;
  return 'unknown_kid';
}

/** jose's error, as one of our reasons. */
export function failureOf(err: unknown): VerifyFailure {
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'bad_signature';
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    // A missing or different iss/aud: not a token for us. A bad exp/nbf/iat value: malformed.
    if (err.claim === 'iss') return 'wrong_issuer';
    if (err.claim === 'aud') return 'wrong_audience';
    if (err.claim === 'nbf' && err.reason === 'check_failed') return 'not_yet_valid';
    return 'malformed';
  }
  return 'malformed';
}

export class JwtVerifier {
  private readonly keys: () => KeySet;
  private readonly options: JwtVerifyOptions;

  /** `keys` is read on each verification, so a reload takes effect at once. */
  constructor(keys: () => KeySet, options: JwtVerifyOptions) {
    this.keys = keys;
    this.options = options;
  }

  async verify(token: string): Promise<VerifyResult> {
    if (!COMPACT_JWS.test(token)) return fail('malformed');
    let alg: unknown;
    let kid: unknown;
    try {
      ({ alg, kid } = decodeProtectedHeader(token));
    } catch {
      return fail('malformed');
    }
    if (typeof alg !== 'string' || (kid !== undefined && typeof kid !== 'string')) {
      return fail('malformed');
    }
    const keys = candidates(this.keys(), alg, kid);
    if (typeof keys === 'string') return fail(keys);
    const { issuer, audience, clockToleranceSec, now } = this.options;
    const nowMs = now === undefined ? Date.now() : now();
    let last: VerifyFailure = 'bad_signature';
    for (const entry of keys) {
      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(token, entry.key, {
          algorithms: [alg],
          issuer: issuer === '' ? undefined : issuer,
          audience: audience === '' ? undefined : audience,
          clockTolerance: clockToleranceSec,
          requiredClaims: ['exp'],
          currentDate: now === undefined ? undefined : new Date(nowMs),
        }));
      } catch (err) {
        last = failureOf(err);
        // Another key of the same algorithm may have signed it; claim failures are final.
        if (last === 'bad_signature') continue;
        return fail(last);
      }
      // jose checks a future iat only with maxTokenAge: a token issued in the future is not valid yet.
      if (typeof claims.iat === 'number' && claims.iat * 1000 > nowMs + clockToleranceSec * 1000) {
        return fail('not_yet_valid');
      }
      return { ok: true, claims, expiresAt: (claims.exp as number) * 1000 };
    }
    return fail(last);
  }
}
