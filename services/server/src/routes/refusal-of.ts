// The refusal (refusals.ts) for an error of the SSE core or the broker: shutting down, the broker
// unreachable (with the publish's outcome), one channel unavailable, limits.maxChannels; null for
// anything else (a bug: the caller answers 500 and logs it).
import {
  BrokerUnavailableError,
  ChannelLimitError,
  ChannelUnavailableError,
} from '../broker/broker.ts';
import { Refusal } from '../refusals.ts';
import { DrainingError } from '../sse/hub.ts';

const UNKNOWN_OUTCOME =
  'the event broker did not answer in time: the events may have been stored; retry with the same Idempotency-Key';

export function refusalOf(err: unknown): Refusal | null {
  if (err instanceof Refusal) return err;
  if (err instanceof DrainingError) return new Refusal('shutting_down');
  if (err instanceof BrokerUnavailableError) {
    if (err.outcome === null) return new Refusal('broker_unavailable');
    const message = err.outcome === 'unknown' ? UNKNOWN_OUTCOME : undefined;
    return new Refusal('broker_unavailable', message, { outcome: err.outcome });
  }
  if (err instanceof ChannelUnavailableError) {
    return new Refusal('channel_unavailable', err.message, { channel: err.channel });
  }
  if (err instanceof ChannelLimitError) {
    return new Refusal('channel_limit', err.message, { limit: err.limit });
  }
  return null;
}
