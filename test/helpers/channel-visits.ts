// Subscribes to `count` distinct channels one after another, each stream closed (and gone at the
// server, per /metrics) before the next opens: for "a channel with no subscribers and no history
// holds no slot" under limits.maxChannels.

import { eventually } from '../../services/shared/eventually.ts';
import { CHANNEL_STREAMS, metricValue } from './metrics-text.ts';
import { Subscriber } from './server.ts';

/** The visits that did not open, as "<channel>: <status>". */
export async function visitChannelsInTurn(
  base: string,
  prefix: string,
  count: number,
): Promise<string[]> {
  const refused: string[] = [];
  for (let i = 0; i < count; i++) {
    const sub = new Subscriber(`${base}/sse/channels/${prefix}${i}`);
    await sub.opened.catch(() => {});
    if (sub.status !== 200) refused.push(`${prefix}${i}: ${sub.status}`);
    sub.close();
    await eventually(
      async () => (await metricValue(base, CHANNEL_STREAMS)) === 0,
      5000,
      `the stream of ${prefix}${i} closed at the server`,
    );
  }
  return refused;
}
