// GET / : the viewer page (services/server/public: HTML, one script, one stylesheet; no framework,
// no CDN), served with a strict Content-Security-Policy: same-origin script, style and
// connections only, no inline code, not framable.
import { fileURLToPath } from 'node:url';
import express, { type Response } from 'express';

export const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

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
  // The page may carry a subscribe token in stream URLs: never leak them in a Referer.
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-cache');
}

/** Serves the viewer's files; requests for anything else fall through. */
export function viewerRouter(): express.Router {
  const router = express.Router();
  router.use(
    express.static(PUBLIC_DIR, {
      index: 'index.html',
      etag: false,
      lastModified: true,
      redirect: false,
      fallthrough: true,
      setHeaders: securityHeaders,
    }),
  );
  return router;
}
