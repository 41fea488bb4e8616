// Words for what the server says about a stream: resets, refusal notices and refusals by status.

/** Why a `reset` happened, with the ids involved, and what it means for the page. */
export function explainReset(channel, data) {
  let body = {};
  try {
    body = JSON.parse(data);
  } catch {
    // shown as received below
  }
  const last = body.lastEventId ?? '(none)';
  const after = body.resumeAfter ?? '(unknown)';
  const goesOn =
    after === '0-0'
      ? 'The stream goes on from the oldest event the server holds.'
      : `The stream goes on after ${after}.`;
  switch (body.reason) {
    case 'history_exceeded':
      return `Reset on ${channel}: events after ${last} were dropped from the channel's history before they could be sent (it keeps the newest events for a limited time). ${goesOn} Events in between are lost: anything built from earlier events may be stale.`;
    case 'unknown_id':
      return `Reset on ${channel}: the server does not know ${last}. Its history was lost (a restarted server on the memory broker, a channel that expired, a Redis that lost its data) or the id is ahead of the channel. ${goesOn} Anything built from earlier events may be stale.`;
    case 'malformed_id':
      return `Reset on ${channel}: ${last} is not an event id of this server (<ms>-<seq>). ${goesOn}`;
    default:
      return `Reset on ${channel} (${body.reason ?? 'no reason given'}): the server could not continue after ${last}. ${goesOn}`;
  }
}

const NOTICE_WORDS = {
  max_connections: 'the server is at its connection limit (limits.maxConnections)',
  per_ip_limit: 'too many streams from this address (limits.maxConnectionsPerIp)',
  channel_limit: 'the server holds as many channels as it may (limits.maxChannels)',
  broker_unavailable: 'the event broker (Redis) is unreachable',
  channel_unavailable: 'the server cannot serve this channel now',
  shutting_down: 'the server is shutting down',
};

export const NOTICE_EVENTS = new Set(['overloaded', 'unavailable', 'shutdown']);

/** The words for a refusal notice (`overloaded`, `unavailable`, `shutdown`). */
export function explainNotice(event, data) {
  let body = {};
  try {
    body = JSON.parse(data);
  } catch {
    // no JSON: the event name says enough
  }
  const code = body.error ?? event;
  return { code: `${event}: ${code}`, words: NOTICE_WORDS[code] ?? body.message ?? event };
}

const STATUS_WORDS = {
  400: 'the request is not valid',
  401: 'a valid subscribe token is required: enter it and watch again',
  403: 'this client may not read the channel',
  404: 'there is no such stream',
  429: 'too many streams from this address',
  503: 'the server cannot take the stream now',
};

/** The words for a refused stream request (a status other than 200), from its JSON body. */
export function explainStatus(status, body) {
  const code = body?.error ? ` ${body.error}` : '';
  const message = body?.message ?? STATUS_WORDS[status] ?? 'the server refused the stream';
  return `${status}${code}: ${message}`;
}
