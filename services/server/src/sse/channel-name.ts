// The one rule for channel names, shared by the subscribe and publish routes.
import { CHANNEL_NAME } from '../channel-names.ts';
import { badRequest, type HttpError } from '../http/errors.ts';

/** The 400 for a name that breaks the rule (also for malformed percent-encoding). */
export function badChannelName(): HttpError {
  return badRequest('channel names are 1 to 128 characters of A-Z a-z 0-9 . _ : -', {
    parameter: 'channel',
    pattern: CHANNEL_NAME.source,
  });
}

/** `name` itself, already decoded; throws the 400 when it breaks the rule. */
export function checkChannelName(name: string): string {
  if (!CHANNEL_NAME.test(name)) throw badChannelName();
  return name;
}

/** A channel name from a raw path segment (percent-decoded once); throws the 400 when invalid. */
export function channelName(segment: string): string {
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    throw badChannelName();
  }
  return checkChannelName(name);
}
