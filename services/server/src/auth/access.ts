// Who may subscribe to or publish on a channel: the one entry point the routes call, once per
// request (never per event). It combines
//   - the static tokens (subscribe.token: every channel for subscribing, read from
//     `Authorization: Bearer` or `?access_token=`; publish.token: every channel for publishing,
//     read from `Authorization: Bearer`), exactly as before;
//   - signed tokens (auth.jwt.*): read from the header, the query parameter, then the cookie; their
//     `sse` claim lists the channel patterns a token may subscribe to and publish on;
//   - auth.publicChannels: channels anyone may subscribe to while auth is on.
// Either kind of token grants. With neither configured for an operation the answer is
// `not_configured`, and the caller keeps its own rule (subscribing open; publishing from loopback).
//
// The decision is synchronous when no signature has to be checked (not configured, a public
// channel, no token, the static token) and a promise when one does. Refusals carry their status,
// `WWW-Authenticate` and JSON body (the route adds CORS) and are counted in
// sse_auth_failures_total{reason}.

import { ChannelPatterns, claimCovers } from '../channel-names.ts';
import type { ServerConfig } from '../config.ts';
import { TokenCheck } from '../http/auth.ts';
import { JwtKeyStore } from '../keys/jwt-keys.ts';
import type { Logger } from '../logger.ts';
import { AUTH_FAILURE_REASONS, type AuthFailureReason, type ServerMetrics } from '../metrics.ts';
import { JwtVerifier, type VerifyResult } from './jwt-verify.ts';
import {
  ALL_TOKEN_SOURCES,
  findToken,
  type TokenRequest,
  type TokenSourceName,
} from './token-source.ts';

export type { AuthFailureReason } from '../metrics.ts';
export type { TokenRequest } from './token-source.ts';

export type AuthOp = 'subscribe' | 'publish';

/** Access granted; `expiresAt` is the granting JWT's `exp` in ms, null for no expiry. */
export interface AuthAllowed {
  kind: 'allowed';
  expiresAt: number | null;
}

/** No auth is configured for this operation: the caller applies today's rule. */
export interface AuthNotConfigured {
  kind: 'not_configured';
}

export interface InvalidTokenBody {
  error: 'invalid_token';
  message: string;
}

export interface InsufficientScopeBody {
  error: 'insufficient_scope';
  channel: string;
  /** Every channel refused (several-channel streams). */
  channels?: string[];
  message: string;
}

/** A refusal to send as it is (plus the route's CORS headers). */
export type AuthRefused =
  | {
      kind: 'refused';
      status: 401;
      reason: Exclude<AuthFailureReason, 'insufficient_scope'>;
      headers: Readonly<Record<string, string>>;
      body: InvalidTokenBody;
    }
  | {
      kind: 'refused';
      status: 403;
      reason: 'insufficient_scope';
      headers: Readonly<Record<string, string>>;
      body: InsufficientScopeBody;
    };

export type AuthDecision = AuthAllowed | AuthNotConfigured | AuthRefused;

export interface AuthorizerOptions {
  /** sse_auth_failures_total is counted here when given. */
  metrics?: Pick<ServerMetrics, 'authFailures'>;
  /** Key reloads and their failures are logged here. */
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Re-read the key files when they change (default true). */
  watchKeys?: boolean;
  /**
   * Re-read the key files on SIGHUP (default true). Only with a key file configured: otherwise
   * SIGHUP keeps node's default (the process ends).
   */
  reloadOnSighup?: boolean;
  /** Quiet time after a key file changes before it is read (default 250 ms). */
  reloadDebounceMs?: number;
  /** The clock for token times, ms since the epoch (tests); default Date.now. */
  now?: () => number;
}

const REALM = 'Bearer realm="http-sse"';

/** Where a static token is accepted, per operation: the places it was always read from. */
const STATIC_SOURCES: Readonly<Record<AuthOp, readonly TokenSourceName[]>> = {
  subscribe: ['header', 'query'],
  publish: ['header'],
};

const INVALID_MESSAGES: Readonly<
  Record<Exclude<AuthFailureReason, 'missing' | 'insufficient_scope'>, string>
> = {
  malformed: 'the token is malformed',
  bad_signature: 'the token is not signed by a trusted key',
  expired: 'the token has expired',
  not_yet_valid: 'the token is not valid yet',
  wrong_issuer: 'the token comes from another issuer',
  wrong_audience: 'the token is meant for another audience',
  unknown_kid: 'no configured key has the token key id',
};

const ALLOWED_FOREVER: AuthAllowed = Object.freeze({ kind: 'allowed', expiresAt: null });
const NOT_CONFIGURED: AuthNotConfigured = Object.freeze({ kind: 'not_configured' });

function invalidToken(
  reason: Exclude<AuthFailureReason, 'insufficient_scope'>,
  message: string,
): AuthRefused {
  return Object.freeze({
    kind: 'refused',
    status: 401,
    reason,
    headers: Object.freeze({
      'WWW-Authenticate': `${REALM}, error="invalid_token", error_description="${message}"`,
    }),
    body: Object.freeze({ error: 'invalid_token', message }),
  } as const);
}

const SCOPE_HEADERS = Object.freeze({
  'WWW-Authenticate': `${REALM}, error="insufficient_scope"`,
});

export class Authorizer {
  private readonly subscribeToken: TokenCheck | null;
  private readonly publishToken: TokenCheck | null;
  private readonly publicChannels: ChannelPatterns;
  private readonly keyStore: JwtKeyStore | null;
  private readonly verifier: JwtVerifier | null;
  private readonly cookie: string;
  private readonly failures: Record<AuthFailureReason, { inc(): void }> | null;
  /** The 401s, made once: per operation for `missing` (its message names where to send it). */
  private readonly invalid: Readonly<Record<string, AuthRefused>>;
  private readonly missing: Readonly<Record<AuthOp, AuthRefused>>;

  private constructor(
    config: ServerConfig,
    keyStore: JwtKeyStore | null,
    options: AuthorizerOptions,
  ) {
    this.subscribeToken = config.subscribe.token ? new TokenCheck(config.subscribe.token) : null;
    this.publishToken = config.publish.token ? new TokenCheck(config.publish.token) : null;
    this.publicChannels = new ChannelPatterns(config.auth.publicChannels);
    this.keyStore = keyStore;
    const jwt = config.auth.jwt;
    this.verifier =
      keyStore === null
        ? null
        : new JwtVerifier(() => keyStore.keys, {
            issuer: jwt.issuer,
            audience: jwt.audience,
            clockToleranceSec: jwt.clockToleranceSec,
            now: options.now,
          });
    this.cookie = jwt.cookie;
    const counter = options.metrics?.authFailures;
    this.failures =
      counter === undefined
        ? null
        : (Object.fromEntries(
            AUTH_FAILURE_REASONS.map((reason) => [reason, counter.labels({ reason })]),
          ) as Record<AuthFailureReason, { inc(): void }>);
    this.invalid = Object.fromEntries(
      Object.entries(INVALID_MESSAGES).map(([reason, message]) => [
        reason,
        invalidToken(reason as keyof typeof INVALID_MESSAGES, message),
      ]),
    );
    const where = (op: AuthOp) =>
      keyStore !== null
        ? `Authorization: Bearer, the access_token query parameter or the ${this.cookie} cookie`
        : op === 'subscribe'
          ? 'Authorization: Bearer or the access_token query parameter'
          : 'Authorization: Bearer';
    this.missing = {
      subscribe: invalidToken('missing', `a token is required (${where('subscribe')})`),
      publish: invalidToken('missing', `a token is required (${where('publish')})`),
    };
  }

  /** An authorizer for the config; with JWT keys configured, reads and imports them first. */
  static async create(config: ServerConfig, options: AuthorizerOptions = {}): Promise<Authorizer> {
    const { secret, publicKeys, jwksFile } = config.auth.jwt;
    const keyStore =
      secret !== '' || publicKeys !== '' || jwksFile !== ''
        ? await JwtKeyStore.open(
            { secret, publicKeys, jwksFile },
            {
              logger: options.logger,
              watch: options.watchKeys,
              sighup: options.reloadOnSighup,
              debounceMs: options.reloadDebounceMs,
            },
          )
        : null;
    return new Authorizer(config, keyStore, options);
  }

  /** True when signed tokens are accepted (auth.jwt has a key). */
  get jwtEnabled(): boolean {
    return this.verifier !== null;
  }

  /**
   * May this request `op` on `channel` (a valid channel name, checked by the route first)?
   * Synchronous unless a signed token has to be verified.
   */
  authorize(op: AuthOp, channel: string, req: TokenRequest): AuthDecision | Promise<AuthDecision> {
    if (this.unconfigured(op)) return NOT_CONFIGURED;
    if (op === 'subscribe' && this.publicChannels.matches(channel)) return ALLOWED_FOREVER;
    const presented = this.present(op, req);
    if (typeof presented !== 'string') return presented;
    return this.verifier!.verify(presented).then(
      (result) => this.decide(op, channel, result),
      () => this.refuse(this.invalid.malformed!),
    );
  }

  private unconfigured(op: AuthOp): boolean {
    const staticToken = op === 'subscribe' ? this.subscribeToken : this.publishToken;
    return staticToken === null && this.verifier === null;
  }

  /**
   * The token's verdict before any signature check: refused (none, or a wrong static token with
   * no signed tokens to try it as), allowed (the static token), or the token to verify.
   */
  private present(op: AuthOp, req: TokenRequest): AuthDecision | string {
    const staticToken = op === 'subscribe' ? this.subscribeToken : this.publishToken;
    const verifier = this.verifier;
    const sources = STATIC_SOURCES[op];
    const presented = findToken(req, verifier === null ? sources : ALL_TOKEN_SOURCES, this.cookie);
    if (presented === null) return this.refuse(this.missing[op]);
    if (
      staticToken !== null &&
      sources.includes(presented.source) &&
      staticToken.matches(presented.token)
    ) {
      return ALLOWED_FOREVER;
    }
    // A wrong static token, with no signed tokens to try it as: it is not ours.
    if (verifier === null) return this.refuse(this.invalid.bad_signature!);
    return presented.token;
  }

  /**
   * May this request `op` on every one of `channels`? One token check for all of them (the
   * signature is verified once): allowed (the token's expiry), not configured, the 401 of the
   * token, or one 403 naming every channel the token does not cover (public channels mix freely
   * when subscribing).
   */
  async authorizeAll(
    op: AuthOp,
    channels: readonly string[],
    req: TokenRequest,
  ): Promise<AuthDecision> {
    if (this.unconfigured(op)) return NOT_CONFIGURED;
    const closed =
      op === 'subscribe' ? channels.filter((c) => !this.publicChannels.matches(c)) : channels;
    if (closed.length === 0) return ALLOWED_FOREVER;
    const presented = this.present(op, req);
    if (typeof presented !== 'string') return presented;
    let result: VerifyResult;
    try {
      result = await this.verifier!.verify(presented);
    } catch {
      return this.refuse(this.invalid.malformed!);
    }
    if (!result.ok) return this.refuse(this.invalid[result.reason]!);
    const refused: string[] = [];
    for (const channel of closed) {
      const scope = this.scopeOf(op, channel, result);
      if (scope === 'malformed') return this.refuse(this.invalid.malformed!);
      if (scope === 'insufficient') refused.push(channel);
    }
    if (refused.length === 0) return { kind: 'allowed', expiresAt: result.expiresAt };
    return this.insufficientScope(op, refused);
  }

  /**
   * The channel API: does the request carry a signed token whose claim says
   * `"sse": {"admin": true}`? (Refusals are answered by the API's own guard.)
   */
  authorizeAdmin(req: TokenRequest): boolean | Promise<boolean> {
    const verifier = this.verifier;
    if (verifier === null) return false;
    const presented = findToken(req, ALL_TOKEN_SOURCES, this.cookie);
    if (presented === null) return false;
    return verifier.verify(presented.token).then(
      (result) => {
        const sse = result.ok ? result.claims.sse : undefined;
        return (
          typeof sse === 'object' && sse !== null && (sse as { admin?: unknown }).admin === true
        );
      },
      () => false,
    );
  }

  /** Re-reads the key files now (also done on SIGHUP and file changes); false: old keys kept. */
  async reload(): Promise<boolean> {
    return this.keyStore === null ? true : this.keyStore.reload();
  }

  /** Stops watching key files and listening for SIGHUP. */
  close(): void {
    this.keyStore?.close();
  }

  private decide(op: AuthOp, channel: string, result: VerifyResult): AuthDecision {
    if (!result.ok) return this.refuse(this.invalid[result.reason]!);
    const scope = this.scopeOf(op, channel, result);
    if (scope === 'malformed') return this.refuse(this.invalid.malformed!);
    if (scope === 'insufficient') return this.insufficientScope(op, [channel]);
    return { kind: 'allowed', expiresAt: result.expiresAt };
  }

  /** Whether a verified token's `sse` claim covers the channel for `op`. */
  private scopeOf(
    op: AuthOp,
    channel: string,
    result: Extract<VerifyResult, { ok: true }>,
  ): 'covered' | 'insufficient' | 'malformed' {
    const sse = result.claims.sse;
    if (sse === undefined) return 'insufficient';
    if (sse === null || typeof sse !== 'object' || Array.isArray(sse)) return 'malformed';
    if (!Object.hasOwn(sse, op)) return 'insufficient';
    const covered = claimCovers((sse as Record<string, unknown>)[op], channel);
    if (covered === 'malformed') return 'malformed';
    return covered ? 'covered' : 'insufficient';
  }

  /** The 403 naming the channels the token does not cover (one: `channel`; several: both). */
  private insufficientScope(op: AuthOp, refused: readonly string[]): AuthRefused {
    const verb = op === 'subscribe' ? 'subscribing to' : 'publishing on';
    const body: InsufficientScopeBody =
      refused.length === 1
        ? {
            error: 'insufficient_scope',
            channel: refused[0]!,
            message: `the token does not allow ${verb} this channel`,
          }
        : {
            error: 'insufficient_scope',
            channel: refused.join(','),
            channels: [...refused],
            message: `the token does not allow ${verb} ${refused.join(', ')}`,
          };
    return this.refuse({
      kind: 'refused',
      status: 403,
      reason: 'insufficient_scope',
      headers: SCOPE_HEADERS,
      body,
    });
  }

  private refuse(refusal: AuthRefused): AuthRefused {
    this.failures?.[refusal.reason].inc();
    return refusal;
  }
}

/**
 * A refusal as the routes answer it. With signed tokens configured: the decision's own answer
 * (`invalid_token` / `insufficient_scope`, RFC 6750's WWW-Authenticate). With the static tokens
 * alone (the simple mode), the answer they always had: `unauthorized`, naming the token.
 */
export function refusalAnswer(
  decision: AuthRefused,
  op: AuthOp,
  jwtEnabled: boolean,
): { status: number; body: { error: string; message: string }; headers: Record<string, string> } {
  if (jwtEnabled) {
    return {
      status: decision.status,
      body: { ...decision.body },
      headers: { ...decision.headers },
    };
  }
  return {
    status: 401,
    body: { error: 'unauthorized', message: `a valid ${op} token is required` },
    headers: { 'WWW-Authenticate': REALM },
  };
}

/** Shorthand for Authorizer.create. */
export function createAuthorizer(
  config: ServerConfig,
  options: AuthorizerOptions = {},
): Promise<Authorizer> {
  return Authorizer.create(config, options);
}
