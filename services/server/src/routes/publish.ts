// POST /channels/:channel/events: validates a publish request and hands it to the hub.
// Body: {"event"?: string, "data": <string | any JSON>} or an array of them (a batch, in order).
import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { type Authorizer, refusalAnswer } from '../auth/access.ts';
import type { EventInput, IdempotencyRequest } from '../broker/broker.ts';
import type { ServerConfig } from '../config.ts';
import type { ClientAddressOf } from '../http/client-address.ts';
import type { Cors } from '../http/cors.ts';
import { badRequest, HttpError } from '../http/errors.ts';
import { verifyJsonDepth } from '../http/json-depth.ts';
import { methodNotAllowed } from '../http/method-not-allowed.ts';
import { PublishGuard } from '../http/publish-guard.ts';
import { checkChannelName } from '../sse/channel-name.ts';
import type { Hub } from '../sse/hub.ts';
import { validEventName } from '../wire/encode.ts';
import { refusalOf } from './refusal-of.ts';

const MAX_EVENT_NAME = 256;

/** Turns one body item into an event input, or throws a 400 naming what is wrong. */
function toInput(item: unknown, where: string): EventInput {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    throw badRequest(`${where} must be an object {"event"?: string, "data": ...}`);
  }
  const obj = item as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (key !== 'event' && key !== 'data') {
      throw badRequest(`${where} has the unknown field "${key}" (allowed: event, data)`, {
        field: key,
      });
    }
  }
  if (!('data' in obj) || obj.data === undefined) {
    throw badRequest(`${where}.data is required`, { field: 'data' });
  }
  const data = typeof obj.data === 'string' ? obj.data : JSON.stringify(obj.data);
  const event = obj.event;
  if (event === undefined) return { data };
  if (typeof event !== 'string' || event.length > MAX_EVENT_NAME || !validEventName(event)) {
    throw badRequest(
      `${where}.event must be a string of at most ${MAX_EVENT_NAME} characters without CR, LF or NULL`,
      { field: 'event' },
    );
  }
  return { event, data };
}

function parsePublishBody(body: unknown, maxBatch: number): EventInput[] {
  if (body === null || typeof body !== 'object') {
    throw badRequest('the body must be a JSON object or an array of objects');
  }
  if (!Array.isArray(body)) return [toInput(body, 'body')];
  if (body.length === 0) throw badRequest('the batch is empty');
  if (body.length > maxBatch) {
    throw badRequest(`a batch holds at most ${maxBatch} events`, { allowed: { max: maxBatch } });
  }
  return body.map((item, i) => toInput(item, `body[${i}]`));
}

/** An Idempotency-Key (IETF httpapi draft): 1 to 128 visible ASCII characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * The request's idempotency key with a fingerprint of its events (so that a repeat with another
 * body is told apart from a retry), or null without the header; a malformed key is a 400.
 * The fingerprint covers the events as parsed (event name and data string of each, in order),
 * so the same events sent with other whitespace or key order count as the same body.
 */
function idempotencyOf(
  header: string | string[] | undefined,
  events: readonly EventInput[],
): IdempotencyRequest | null {
  if (header === undefined) return null;
  const key = Array.isArray(header) ? header.join(',') : header;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw badRequest('Idempotency-Key must be 1 to 128 visible ASCII characters (0x21-0x7E)', {
      header: 'Idempotency-Key',
    });
  }
  const hash = createHash('sha256');
  for (const e of events) hash.update(JSON.stringify([e.event ?? null, e.data]));
  return { key, fingerprint: hash.digest('base64url') };
}

/**
 * Refuses a publish request before its body is read: a bad channel name (400), a token that does
 * not grant it (401/403, auth/access.ts), the loopback rules when no token is configured (403),
 * a body that is not JSON (415; http/publish-guard.ts).
 */
function publishGuard(config: ServerConfig, addressOf: ClientAddressOf, auth: () => Authorizer) {
  const guard = new PublishGuard(config.cors.allowedOrigins);
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    try {
      // express has percent-decoded the parameter already: check it, do not decode it again.
      const name = checkChannelName(String(req.params.channel));
      const authorizer = auth();
      const decision = await authorizer.authorize('publish', name, req);
      if (decision.kind === 'refused') {
        const answer = refusalAnswer(decision, 'publish', authorizer.jwtEnabled);
        next(new HttpError(answer.status, answer.body, answer.headers));
        return;
      }
      // Behind a trusted proxy the socket is loopback for every client: ask who is behind it.
      const granted = decision.kind === 'allowed';
      next(guard.check(req.headers, addressOf(req), granted) ?? undefined);
    } catch (err) {
      next(err);
    }
  };
}

function publishHandler(config: ServerConfig, hub: Hub) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const name = String(req.params.channel); // checked by the guard
      const empty =
        req.headers['transfer-encoding'] === undefined &&
        Number(req.headers['content-length'] ?? 0) === 0;
      const events = parsePublishBody(empty ? undefined : req.body, config.channels.maxBatchEvents);
      const idempotency = idempotencyOf(req.headers['idempotency-key'], events);
      const result = await hub.publish(name, events, idempotency ?? undefined);
      switch (result.kind) {
        case 'published':
          res.status(202).json(result.answer);
          return;
        case 'replayed':
          res.set({
            'Idempotent-Replayed': 'true',
            'Access-Control-Expose-Headers': 'Idempotent-Replayed',
          });
          res.status(202).json(result.answer);
          return;
        case 'in_flight':
          throw new HttpError(
            409,
            {
              error: 'idempotency_key_in_flight',
              message: 'a publish with this Idempotency-Key is still in flight; retry shortly',
            },
            { 'Retry-After': '1' },
          );
        case 'key_reused':
          throw new HttpError(422, {
            error: 'idempotency_key_reused',
            message: 'this Idempotency-Key was used on this channel with another body',
          });
      }
    } catch (err) {
      next(refusalOf(err) ?? err);
    }
  };
}

const PUBLISH_PATH = '/channels/:channel/events';

/**
 * The publish route: OPTIONS (CORS preflight), POST (guard before the body is read, JSON body
 * bounded in size and depth, then the hub), anything else 405; CORS headers on every answer.
 */
export function publishRouter(
  config: ServerConfig,
  hub: Hub,
  cors: Cors,
  addressOf: ClientAddressOf,
  auth: () => Authorizer,
): express.Router {
  const router = express.Router();
  const withCors = (req: Request, res: Response, next: NextFunction): void => {
    res.set(cors.responseHeaders(req.headers));
    next();
  };
  router.options(PUBLISH_PATH, (req, res) => {
    res.set(cors.preflightHeaders(req.headers, 'POST, OPTIONS') as Record<string, string>);
    res.status(204).end();
  });
  router.post(
    PUBLISH_PATH,
    withCors,
    publishGuard(config, addressOf, auth),
    express.json({
      limit: config.channels.maxBodyBytes,
      type: () => true,
      strict: false,
      verify: verifyJsonDepth,
    }),
    publishHandler(config, hub),
  );
  router.all(PUBLISH_PATH, withCors, methodNotAllowed('POST, OPTIONS'));
  return router;
}
