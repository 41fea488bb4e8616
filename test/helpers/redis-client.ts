// A short-lived ioredis connection to a test Redis, for what a test checks or breaks behind the
// server's back: XLEN of a channel's stream, DEL + SET to give a key the wrong type.
import { Redis } from 'ioredis';

/** Runs one command on a fresh connection (fails fast: no retry, no offline queue). */
export async function redisCall(port: number, command: string, ...args: (string | number)[]) {
  const conn = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    commandTimeout: 5000,
    retryStrategy: () => null,
  });
  conn.on('error', () => {});
  try {
    await conn.connect();
    return await conn.call(command, args);
  } finally {
    conn.disconnect();
  }
}

/** Entries in the stream `key` (0 when it does not exist). */
export async function xlen(port: number, key: string): Promise<number> {
  return Number(await redisCall(port, 'XLEN', key));
}

/** The entries of the stream `key`, oldest first, as [id, data] (the `d` field). */
export async function xrangeData(port: number, key: string): Promise<[string, string][]> {
  const entries = (await redisCall(port, 'XRANGE', key, '-', '+')) as [string, string[]][];
  return entries.map(([id, fields]) => [id, fields[fields.indexOf('d') + 1] ?? '']);
}
