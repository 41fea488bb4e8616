// Where a Last-Event-ID leaves off in a channel's record, for both brokers: either the history
// continues it (replay every later event), or the stream must start with an explicit `reset`.
import { compareIds, type EventId, parseEventId, previousId, ZERO_ID } from './event-id.ts';

export type ResetReason = 'history_exceeded' | 'unknown_id' | 'malformed_id';

/** What a broker knows of a channel's record of events. */
export interface RecordState {
  /** The oldest event still held, or null when none is. */
  readonly oldest: EventId | null;
  /** The newest id ever given to an event of the channel, or null when it never had one. */
  readonly last: EventId | null;
  /** The newest id removed from the history (by count, bytes or age), or null when none was. */
  readonly maxDeleted: EventId | null;
}

export interface Placement {
  /** Replay every held event after this id. */
  readonly after: EventId;
  /** Set when the history cannot continue the client's id. */
  readonly reset: { readonly reason: ResetReason; readonly lastEventId: string } | null;
}

/** Every event after this id is held: the first id a client may resume from without a gap. */
export function recordFloor(state: RecordState): EventId {
  if (state.maxDeleted !== null) return state.maxDeleted;
  if (state.oldest !== null) return previousId(state.oldest);
  return ZERO_ID;
}

/**
 * Places `lastEventId` in the record. It continues without a gap when floor <= id <= last: every
 * event after it is still held. Otherwise the client gets a reset and the history from the floor:
 * `history_exceeded` when events after its id were removed, `unknown_id` when the id is ahead of
 * the channel or older than a record that lost nothing (a lost or restarted history),
 * `malformed_id` when it is not `<ms>-<seq>`.
 */
export function placeLastEventId(lastEventId: string, state: RecordState): Placement {
  const floor = recordFloor(state);
  const id = parseEventId(lastEventId.trim());
  const reset = (reason: ResetReason): Placement => ({
    after: floor,
    reset: { reason, lastEventId: lastEventId.slice(0, 64) },
  });
  if (id === null) return reset('malformed_id');
  const last = state.last ?? ZERO_ID;
  if (compareIds(id, last) > 0) return reset('unknown_id');
  // `0-0` (the resumeAfter of a reset on an empty record) means "from the start": exact while
  // nothing was ever removed, so a client that resumes from the reset's id gets no second reset.
  if (id.ms === 0 && id.seq === 0 && state.maxDeleted === null)
    return { after: ZERO_ID, reset: null };
  if (compareIds(id, floor) < 0) {
    const trimmed = state.maxDeleted !== null && compareIds(id, state.maxDeleted) < 0;
    return reset(trimmed ? 'history_exceeded' : 'unknown_id');
  }
  return { after: id, reset: null };
}
