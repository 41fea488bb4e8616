// GET / : the console page (services/server/public: HTML, ES modules, one stylesheet, the favicon;
// no framework, no CDN), served with a strict Content-Security-Policy: same-origin script, style
// and connections only, no inline code, not framable. The console parses streams with the same
// eventsource-parser the client library uses, served from the installed package at
// /vendor/eventsource-parser/ (its three ES module files only).
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Response } from 'express';

export const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

/** The directory of eventsource-parser's ES modules (dist/index.js and its imports). */
const PARSER_DIR = dirname(fileURLToPath(import.meta.resolve('eventsource-parser')));
const PARSER_FILES = new Set(['index.js', 'parse.js', 'errors.js']);
export const PARSER_PATH = '/vendor/eventsource-parser/';

export const VIEWER_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function securityHeaders(res: Response): void {
  res.setHeader('Content-Security-Policy', VIEWER_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // The page may hold tokens: never leak its URL in a Referer.
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-cache');
}

const staticOptions = {
  etag: false,
  lastModified: true,
  redirect: false,
  fallthrough: true,
  setHeaders: securityHeaders,
};

/** Serves the console's files and the parser's modules; requests for anything else fall through. */
export function viewerRouter(): express.Router {
  const router = express.Router();
  router.use(express.static(PUBLIC_DIR, { ...staticOptions, index: 'index.html' }));
  const parser = express.static(PARSER_DIR, { ...staticOptions, index: false });
  router.use(PARSER_PATH, (req, res, next) => {
    if (PARSER_FILES.has(req.path.slice(1))) parser(req, res, next);
    else next();
  });
  return router;
}
