// Turns a published event and its id into the SSE bytes every subscriber gets (once per event).
import { encodeEvent } from '../sse/encode.ts';
import type { EventInput, FramedEvent } from './broker.ts';
import { type EventId, formatEventId } from './event-id.ts';

export function frameEvent(input: EventInput, id: EventId): FramedEvent {
  const text = formatEventId(id);
  return {
    ms: id.ms,
    seq: id.seq,
    id: text,
    payload: Buffer.from(encodeEvent(input.data, input.event, text)),
  };
}
