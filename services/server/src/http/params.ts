// Parsing of query parameters and the Last-Event-ID header, each failure a 400 naming the input.
import { badRequest } from './errors.ts';

/** An integer query parameter within [min, max], or `fallback` when absent. */
export function intParam(
  query: URLSearchParams,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  const value = /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw badRequest(`${name} must be an integer from ${min} to ${max}`, {
      parameter: name,
      value: raw,
      allowed: { min, max },
    });
  }
  return value;
}

/**
 * The Last-Event-ID header, or `lastEventId` in the query for clients that cannot set headers, as
 * given. Null when neither is given (an empty header counts as none, as the EventSource spec
 * sends none when its last event ID is empty).
 */
export function rawLastEventId(
  header: string | string[] | undefined,
  query: URLSearchParams,
): { value: string; from: 'Last-Event-ID' | 'lastEventId' } | null {
  const fromHeader = Array.isArray(header) ? header[0] : header;
  if (fromHeader !== undefined && fromHeader !== '') {
    return { value: fromHeader, from: 'Last-Event-ID' };
  }
  const fromQuery = query.get('lastEventId');
  return fromQuery === null || fromQuery === '' ? null : { value: fromQuery, from: 'lastEventId' };
}

/** The example stream's Last-Event-ID: a non-negative integer index, or null (400 otherwise). */
export function lastEventIdParam(
  header: string | string[] | undefined,
  query: URLSearchParams,
): number | null {
  const raw = rawLastEventId(header, query);
  if (raw === null) return null;
  const trimmed = raw.value.trim();
  if (!/^\d{1,16}$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    throw badRequest('Last-Event-ID must be a non-negative integer event id', {
      parameter: raw.from,
      value: raw.value.slice(0, 64),
    });
  }
  return Number(trimmed);
}
