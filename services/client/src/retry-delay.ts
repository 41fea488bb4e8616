// publish()'s wait between attempts: exponential backoff with full jitter (a uniform delay in
// [0, min(maxDelayMs, minDelayMs × 2^(n-1))] after the n-th failed attempt), never shorter than
// the server's Retry-After, never longer than maxDelayMs.

/** Largest delay we will ever schedule (setTimeout's limit is 2^31-1 ms). */
export const MAX_DELAY_MS = 2_147_483_647;

const HTTP_DATE_START = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /;

export interface BackoffOptions {
  minDelayMs: number;
  maxDelayMs: number;
  /** Random source in [0, 1). */
  random: () => number;
}

/**
 * A Retry-After header (RFC 9110, 10.2.3: delay-seconds or an HTTP-date) in ms from `nowMs`;
 * undefined when absent or malformed, 0 for a date in the past.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs = Date.now(),
): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_DELAY_MS);
  // Every HTTP-date form starts with the day name; Date.parse alone would take "-1" as a year.
  const date = HTTP_DATE_START.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - nowMs), MAX_DELAY_MS);
}

/** The wait in ms after `failures` failed attempts (1 after the first), given Retry-After if any. */
export function retryDelay(
  failures: number,
  retryAfterMs: number | undefined,
  options: BackoffOptions,
): number {
  const cap = Math.min(options.maxDelayMs, MAX_DELAY_MS);
  const ceiling = Math.min(cap, options.minDelayMs * 2 ** Math.max(0, failures - 1));
  const jittered = Math.floor(options.random() * ceiling);
  return Math.min(cap, Math.max(jittered, retryAfterMs ?? 0));
}
