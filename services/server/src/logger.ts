// Structured JSON logs (pino) on stdout; tokens and query strings never reach them. A URL that is
// logged goes through auth/token-source.ts redactAccessToken first; fields that may hold a token or
// a key are censored here wherever they are (up to the depths listed).
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'http-sse-server' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'token',
          '*.token',
          'authorization',
          '*.authorization',
          '*.headers.authorization',
          'access_token',
          '*.access_token',
          'cookie',
          '*.cookie',
          '*.headers.cookie',
          'secret',
          '*.secret',
          '*.*.secret',
          '*.*.*.secret',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
