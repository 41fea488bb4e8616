// Events of a several-channel stream (GET /sse/streams?channel=a&channel=b) carry, as data, one
// JSON object {"channel": <name>, "data": <the data the channel's own route gives>}; their id is
// the stream's cursor of every channel. The library hands such events out with `channel` set and
// `data` the channel's own data, so consumers see the same data on either route.
import type { SseEvent } from './parser.ts';

/** True for the several-channel stream route (its events carry the envelope). */
export function isMultiChannelUrl(url: URL): boolean {
  return url.pathname.replace(/\/+$/, '').endsWith('/sse/streams');
}

/** The event with its channel and the channel's data; as it is when the data is no envelope. */
export function unwrapEnvelope(event: SseEvent): SseEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(event.data);
  } catch {
    return event;
  }
  if (parsed === null || typeof parsed !== 'object') return event;
  const { channel, data } = parsed as { channel?: unknown; data?: unknown };
  if (typeof data !== 'string' || !(typeof channel === 'string' || channel === null)) return event;
  return { ...event, data, channel };
}
