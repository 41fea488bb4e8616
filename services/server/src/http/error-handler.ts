// The last two express handlers: 404 for an unknown route, and the error handler that turns every
// error into a JSON answer (HttpError as thrown; body-parser errors as 400/413/415; other 4xx as
// themselves; anything else 500, logged). A request the client aborted gets no answer.
import type { NextFunction, Request, Response } from 'express';
import type { ServerConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { HttpError } from './errors.ts';
import { MAX_JSON_DEPTH } from './json-depth.ts';

/** body-parser's error types (and json-depth's) -> status and error code. */
const BODY_ERRORS: Record<string, [number, string]> = {
  'entity.too.large': [413, 'payload_too_large'],
  'entity.parse.failed': [400, 'bad_request'],
  'entity.verify.failed': [400, 'bad_request'],
  'json.too_deep': [400, 'bad_request'],
  'encoding.unsupported': [415, 'unsupported_media_type'],
  'charset.unsupported': [415, 'unsupported_media_type'],
};

export function notFound(req: Request, res: Response): void {
  res.status(404).json({ error: 'not_found', message: `no route for ${req.method} ${req.path}` });
}

/** The JSON answer for a body-parser error, or null when `type` is not one. */
function bodyError(type: string | undefined, err: Error, maxBodyBytes: number) {
  const known = type ? BODY_ERRORS[type] : undefined;
  if (!known) return null;
  const [status, error] = known;
  if (status === 413) {
    const message = `the body is larger than channels.maxBodyBytes (${maxBodyBytes} bytes)`;
    return { status, body: { error, message, limit: maxBodyBytes } };
  }
  if (type === 'json.too_deep') {
    return { status, body: { error, message: err.message, limit: MAX_JSON_DEPTH } };
  }
  return { status, body: { error, message: `the body is not valid JSON: ${err.message}` } };
}

export function errorHandler(config: ServerConfig, logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      res.status(err.status).set(err.headers).json(err.body);
      return;
    }
    const type = (err as { type?: string }).type;
    const known = bodyError(type, err as Error, config.channels.maxBodyBytes);
    if (known) {
      res.status(known.status).json(known.body);
      return;
    }
    if (type === 'request.aborted') return;
    // Any other client error (a path whose percent-encoding does not decode, ...): its 4xx, in JSON.
    const status = Number((err as { status?: unknown }).status);
    if (status >= 400 && status < 500) {
      const expose = (err as { expose?: boolean }).expose !== false;
      res.status(status).json({
        error: status === 400 ? 'bad_request' : 'client_error',
        message: expose ? (err as Error).message : 'bad request',
      });
      return;
    }
    logger.error({ err, method: req.method, route: req.route?.path }, 'request failed');
    res.status(500).json({ error: 'internal', message: 'internal server error' });
  };
}
