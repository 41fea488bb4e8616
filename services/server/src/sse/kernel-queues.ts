// What the kernel still holds of each stream's bytes (Linux): a client that never reads leaves
// the process's write queue empty while up to megabytes wait in the kernel's send buffer, so the
// stall rule cannot see it from the process alone. /proc/net/tcp and /proc/net/tcp6 list every
// socket's send queue (tx_queue: bytes written and not yet acknowledged by the peer) by inode;
// a socket's inode is fstat's st_ino of its descriptor (the number /proc/self/fd/<fd> links to as
// `socket:[N]`, without a path lookup through /proc). Elsewhere (no /proc) this is unavailable
// and the stall rule falls back to the process's own queue.
import { existsSync, fstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];

/** True when this system lists sockets' send queues (Linux). */
export function kernelQueuesAvailable(): boolean {
  return process.platform === 'linux' && existsSync(TABLES[0]!);
}

/** The socket's inode, or 0 when it cannot be found (closed, or not a socket descriptor). */
export function socketInode(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return 0;
  try {
    const stat = fstatSync(fd);
    return stat.isSocket() ? stat.ino : 0;
  } catch {
    return 0;
  }
}

/** Every socket with bytes in its send queue: inode -> bytes (sockets with none are absent). */
export async function readSendQueues(): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const table of TABLES) {
    let text: string;
    try {
      text = await readFile(table, 'latin1');
    } catch {
      continue; // no IPv6 table
    }
    parseTable(text, out);
  }
  return out;
}

/**
 * Parses one table: after the header line, whitespace-separated fields
 *   sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
 * Only sockets whose tx_queue is not zero are kept.
 */
export function parseTable(text: string, out: Map<number, number>): void {
  let pos = text.indexOf('\n') + 1;
  while (pos > 0 && pos < text.length) {
    const end = text.indexOf('\n', pos);
    const line = text.slice(pos, end < 0 ? text.length : end);
    pos = end < 0 ? text.length : end + 1;
    const fields = line.trim().split(/\s+/);
    const queues = fields[4];
    if (queues === undefined || queues.startsWith('00000000:')) continue;
    const tx = Number.parseInt(queues.slice(0, queues.indexOf(':')), 16);
    const inode = Number(fields[9]);
    if (tx > 0 && inode > 0) out.set(inode, tx);
  }
}
