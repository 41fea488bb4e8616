// Turns a published event and its id into the SSE bytes every subscriber gets (once per event).
import { decodeEvent, encodeEvent } from '../wire/encode.ts';
import type { EventInput, FramedEvent } from './broker.ts';
import { type EventId, formatEventId } from './event-id.ts';
import type { ResetReason } from './resume.ts';

/** The SSE bytes of `events` in all. */
export function payloadBytes(events: readonly FramedEvent[]): number {
  let bytes = 0;
  for (const e of events) bytes += e.payload.length;
  return bytes;
}

export function frameEvent(input: EventInput, id: EventId): FramedEvent {
  const text = formatEventId(id);
  return {
    ms: id.ms,
    seq: id.seq,
    id: text,
    payload: Buffer.from(encodeEvent(input.data, input.event, text)),
  };
}

/**
 * The explicit `reset` event: why the history cannot continue after `lastEventId`, and the id to
 * resume after (`resumeAfter`, also the event's id, so a client that reconnects right after it
 * resumes exactly there).
 */
export function frameReset(
  reason: ResetReason,
  lastEventId: string,
  resumeAfter: EventId,
): FramedEvent {
  const after = formatEventId(resumeAfter);
  const data = JSON.stringify({ reason, lastEventId, resumeAfter: after });
  return {
    ms: resumeAfter.ms,
    seq: resumeAfter.seq,
    id: after,
    payload: Buffer.from(encodeEvent(data, 'reset', after)),
  };
}

/**
 * The event as a several-channel stream (/sse/streams) carries it, without the id line (each
 * stream ends it with its own cursor): the publisher's event name unchanged, and as data one JSON
 * object `{"channel": <channel>, "data": <the data the channel's own route gives>}`. Built once
 * per event, when a several-channel stream first needs it, and kept with the event.
 */
export function envelopeOf(event: FramedEvent, channel: string): Buffer {
  if (event.envelope !== undefined) return event.envelope;
  const { name, data } = decodeEvent(event.payload);
  const text = encodeEvent(JSON.stringify({ channel, data }), name);
  // encodeEvent ends the block with a blank line; the stream adds `id: ...` and the blank line.
  event.envelope = Buffer.from(text.slice(0, -1));
  return event.envelope;
}
