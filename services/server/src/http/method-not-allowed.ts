// 405 with an Allow header and a JSON body, for a known path asked with a method it does not serve.
import type { Request, Response } from 'express';

export function methodNotAllowed(allow: string) {
  return (req: Request, res: Response): void => {
    res
      .status(405)
      .set('Allow', allow)
      .json({ error: 'method_not_allowed', message: `${req.method} is not allowed here` });
  };
}
