// net.core.somaxconn (Linux): the kernel's cap on any listen backlog, so on how many handshakes
// may wait to be accepted. The server says at start when it is below limits.maxConnections
// (http/socket-limits.ts); the storm reports it beside the accept queue's overflows
// (loadtest/src/storm/listen-queue.ts).
import { readFileSync } from 'node:fs';

const SOMAXCONN_PATH = '/proc/sys/net/core/somaxconn';

/** The cap read from `path`, or null where it cannot be read (not Linux) or is not a count. */
export function acceptQueueCap(path = SOMAXCONN_PATH): number | null {
  try {
    const n = Number(readFileSync(path, 'latin1').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
