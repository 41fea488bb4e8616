// Command-line helpers shared by the CLIs: node:util parseArgs in strict mode, with every problem
// reported as one UsageError (the CLI prints it with its usage text on stderr and exits 2), plus
// checkers for the flag values the CLIs have in common.
import { readFileSync } from 'node:fs';
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** An HTTP header name (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value: no control characters except tab. */
export const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** True for an absolute http: or https: URL. */
export function isHttpUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const { protocol } = new URL(text);
  return protocol === 'http:' || protocol === 'https:';
}

/**
 * parseArgs with `strict: true`: an unknown flag, a missing value or (unless `positionals`) a
 * positional argument is a UsageError with parseArgs' first message line.
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  argv: string[],
  options: T,
  positionals = false,
) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: positionals });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
}

/** An integer flag value in [min, max]; undefined when the flag was not given. */
export function integerFlag(
  flag: string,
  raw: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(
      `${flag} needs an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return Number(raw);
}

/** A positive integer flag value (1 up to Number.MAX_SAFE_INTEGER). */
export function positiveIntegerFlag(flag: string, raw: string | undefined): number | undefined {
  return integerFlag(flag, raw, 1, Number.MAX_SAFE_INTEGER);
}

/** An absolute http:// or https:// URL flag value. */
export function httpUrlFlag(flag: string, raw: string | undefined): string | undefined {
  if (raw !== undefined && !isHttpUrl(raw)) {
    throw new UsageError(
      `${flag} needs an absolute http:// or https:// URL, got ${JSON.stringify(raw)}`,
    );
  }
  return raw;
}

/** Repeated "Name: value" flag values as a header record (a later name wins). */
export function headerFlags(flag: string, raws: readonly string[] | undefined) {
  const headers: Record<string, string> = {};
  for (const raw of raws ?? []) {
    const colon = raw.indexOf(':');
    const name = colon > 0 ? raw.slice(0, colon).trim() : '';
    const value = colon > 0 ? raw.slice(colon + 1).trim() : '';
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) {
      throw new UsageError(
        `${flag} needs "Name: value" with a valid header name, got ${JSON.stringify(raw)}`,
      );
    }
    headers[name] = value;
  }
  return headers;
}

/** The `version` of the repository's package.json (what `--version` prints). */
export function packageVersion(): string {
  const file = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}
