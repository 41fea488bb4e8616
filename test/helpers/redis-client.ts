// What a test reads from a test Redis behind the server's back (XRANGE of a channel's stream),
// through the harness's one-command connection (redisCall, which the tests also use directly).
import { redisCall } from '../../loadtest/src/redis-ha.ts';

/** The entries of the stream `key`, oldest first, as [id, data] (the `d` field). */
export async function xrangeData(port: number, key: string): Promise<[string, string][]> {
  const entries = (await redisCall(port, 'XRANGE', key, '-', '+')) as [string, string[]][];
  return entries.map(([id, fields]) => [id, fields[fields.indexOf('d') + 1] ?? '']);
}
