// The 503 answers for a request the service cannot take now, each with Retry-After and a JSON
// body that says why: shutting down, the broker unreachable, or limits.maxChannels reached.
import {
  BrokerUnavailableError,
  ChannelLimitError,
  ChannelUnavailableError,
} from '../broker/broker.ts';
import { HttpError } from '../http/errors.ts';
import { DrainingError } from '../sse/hub.ts';

export function unavailable(err: unknown): HttpError | null {
  if (err instanceof DrainingError) {
    return new HttpError(
      503,
      { error: 'unavailable', message: 'the server is shutting down' },
      { 'Retry-After': '1' },
    );
  }
  if (err instanceof BrokerUnavailableError) {
    return new HttpError(
      503,
      {
        error: 'broker_unavailable',
        message:
          err.outcome === 'unknown'
            ? 'the event broker did not answer in time: the events may have been stored; retry with the same Idempotency-Key'
            : 'the event broker is unreachable; try again shortly',
        ...(err.outcome === null ? {} : { outcome: err.outcome }),
      },
      { 'Retry-After': '2' },
    );
  }
  if (err instanceof ChannelUnavailableError) {
    return new HttpError(
      503,
      { error: 'channel_unavailable', message: err.message, channel: err.channel },
      { 'Retry-After': '5' },
    );
  }
  if (err instanceof ChannelLimitError) {
    return new HttpError(
      503,
      { error: 'channel_limit', message: err.message, limit: err.limit },
      { 'Retry-After': '30' },
    );
  }
  return null;
}
