// The channel API (admin; see http/admin-guard.ts for who may read it):
//   GET /channels?prefix=&limit=&cursor=  {"channels":[facts...], "next": cursor | null}, sorted by
//                                         name, limit 1..500 (default 100)
//   GET /channels/:channel                the facts of one channel; 404 when it does not exist
// Facts: {"name","subscribers","lastEventId","historyLength","lastPublishAt"} (channels/directory.ts).
// A bad query value answers 400 naming the parameter; the broker unreachable, 503.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Authorizer } from '../auth/access.ts';
import { CHANNEL_NAME } from '../channel-names.ts';
import type { ChannelDirectory, ChannelQuery } from '../channels/directory.ts';
import type { ServerConfig } from '../config.ts';
import { AdminGuard } from '../http/admin-guard.ts';
import type { ClientAddressOf } from '../http/client-address.ts';
import { badRequest, HttpError } from '../http/errors.ts';
import { methodNotAllowed } from '../http/method-not-allowed.ts';
import { intParam } from '../http/params.ts';
import { checkChannelName } from '../sse/channel-name.ts';
import { refusalOf } from './refusal-of.ts';

export const LIST_DEFAULT_LIMIT = 100;
export const LIST_MAX_LIMIT = 500;
const PARAMETERS = ['prefix', 'limit', 'cursor'];
const PREFIX = /^[A-Za-z0-9._:-]{0,128}$/;

/** The list query from the request's query string; throws a 400 naming the bad parameter. */
export function listQuery(search: string): ChannelQuery {
  const query = new URLSearchParams(search);
  const seen = new Set<string>();
  for (const name of query.keys()) {
    if (!PARAMETERS.includes(name)) {
      throw badRequest(`unknown parameter ${name} (known: ${PARAMETERS.join(', ')})`, {
        parameter: name.slice(0, 64),
      });
    }
    if (seen.has(name)) throw badRequest(`${name} is given more than once`, { parameter: name });
    seen.add(name);
  }
  const prefix = query.get('prefix') ?? '';
  if (!PREFIX.test(prefix)) {
    throw badRequest('prefix must be at most 128 characters of A-Z a-z 0-9 . _ : -', {
      parameter: 'prefix',
      value: prefix.slice(0, 64),
    });
  }
  const limit = intParam(query, 'limit', 1, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT);
  const cursor = query.get('cursor') ?? '';
  if (cursor !== '' && !CHANNEL_NAME.test(cursor)) {
    throw badRequest('cursor must be the next value of a previous page (a channel name)', {
      parameter: 'cursor',
      value: cursor.slice(0, 64),
    });
  }
  return { prefix, limit, after: cursor === '' ? null : cursor };
}

function searchOf(req: Request): string {
  const url = req.originalUrl;
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
}

export function channelsApiRouter(
  config: ServerConfig,
  directory: ChannelDirectory,
  addressOf: ClientAddressOf,
  auth: () => Authorizer,
) {
  const router = express.Router();
  const guard = new AdminGuard(config.auth.adminToken, addressOf);
  const admin = (req: Request, res: Response, next: NextFunction): void => {
    res.set('Cache-Control', 'no-store');
    guard.check(req, auth()).then((refusal) => next(refusal ?? undefined), next);
  };
  const fail = (next: NextFunction) => (err: unknown) => next(refusalOf(err) ?? err);

  router.get('/channels', admin, (req, res, next) => {
    let query: ChannelQuery;
    try {
      query = listQuery(searchOf(req));
    } catch (err) {
      next(err);
      return;
    }
    directory.list(query).then((page) => void res.json(page), fail(next));
  });
  router.all('/channels', methodNotAllowed('GET, HEAD'));

  router.get('/channels/:channel', admin, (req, res, next) => {
    let name: string;
    try {
      // express has percent-decoded the parameter already: check it, do not decode it again.
      name = checkChannelName(String(req.params.channel));
    } catch (err) {
      next(err);
      return;
    }
    directory.get(name).then((facts) => {
      if (facts !== null) {
        res.json(facts);
        return;
      }
      next(
        new HttpError(404, {
          error: 'not_found',
          message: `no channel ${name}: it has no subscribers and no history`,
          channel: name,
        }),
      );
    }, fail(next));
  });
  router.all('/channels/:channel', methodNotAllowed('GET, HEAD'));
  return router;
}
