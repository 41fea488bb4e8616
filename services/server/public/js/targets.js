// Which streams carry the watched channels. Today one stream per channel
// (/sse/channels/<name>). When the multi-channel route /sse/streams?channel=a&channel=b exists,
// this function returns one target for all of them, whose channelOf reads each event's channel;
// the rest of the console works on targets and does not change.

/**
 * @param {string[]} channels
 * @returns {{ key: string, url: string, channels: string[], channelOf: (event: object) => string }[]}
 */
export function streamTargets(channels) {
  return channels.map((channel) => ({
    key: channel,
    url: `/sse/channels/${encodeURIComponent(channel)}`,
    channels: [channel],
    channelOf: () => channel,
  }));
}
