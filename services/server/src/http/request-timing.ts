// Observes every express-served request in http_request_duration_seconds{method,route,status_code};
// the route label is the matched route pattern (or "unmatched"), never the raw path.
import type { NextFunction, Request, Response } from 'express';
import type { Histogram } from 'prom-client';

export function timeRequests(httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const start = performance.now();
    res.once('finish', () => {
      const route = req.route?.path ? String(req.route.path) : 'unmatched';
      httpRequestDuration
        .labels({ method: req.method, route, status_code: String(res.statusCode) })
        .observe((performance.now() - start) / 1000);
    });
    next();
  };
}
