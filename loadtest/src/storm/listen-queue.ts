// The kernel's side of a storm (Linux): how often the listen (accept) queue overflowed while it
// ran, and the cap on that queue. A listen backlog is capped at net.core.somaxconn; when more
// connections complete their handshake than the server has accepted, the kernel drops the
// handshake's last ACK (TcpExt ListenOverflows in /proc/net/netstat) and the client, which thinks
// it is connected, waits for TCP to resend (1, 3, 7, 15 s ...): those clients are late, and a
// server that closes sockets silent for its headersTimeout may cut them. The counters are the
// network namespace's, so they mean the target's only when it listens on this host's loopback;
// elsewhere they are not read (null).
import { readFileSync } from 'node:fs';
import { acceptQueueCap } from '../../../services/shared/somaxconn.ts';

export interface ListenQueue {
  /** TcpExt ListenOverflows, or null where it cannot be read. */
  overflows: number | null;
  /** net.core.somaxconn, or null. */
  somaxconn: number | null;
}

/** The named TcpExt counter in /proc/net/netstat's text (a header line, then a value line). */
export function tcpExtCounter(netstat: string, name: string): number | null {
  const lines = netstat.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i]!.startsWith('TcpExt:') || !lines[i + 1]!.startsWith('TcpExt:')) continue;
    const names = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    const at = names.indexOf(name);
    if (at <= 0 || names.length !== values.length) return null;
    const n = Number(values[at]);
    return Number.isSafeInteger(n) && n >= 0 ? n : null;
  }
  return null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

/** True when every base is on this host's loopback (the counters are then the target's). */
export function onLoopback(bases: readonly string[]): boolean {
  return bases.every((b) => {
    const host = new URL(b).hostname;
    return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
  });
}

/** The counters now (nulls when the target is not on loopback or this is not Linux). */
export function readListenQueue(bases: readonly string[], root = '/proc'): ListenQueue {
  if (!onLoopback(bases)) return { overflows: null, somaxconn: null };
  const netstat = readOrNull(`${root}/net/netstat`);
  return {
    overflows: netstat === null ? null : tcpExtCounter(netstat, 'ListenOverflows'),
    somaxconn: acceptQueueCap(`${root}/sys/net/core/somaxconn`),
  };
}

/** The storm's figures: overflows during it (after - before) and the cap. */
export function listenQueueFigures(before: ListenQueue, after: ListenQueue) {
  return {
    kernel_listen_overflows:
      before.overflows === null || after.overflows === null
        ? null
        : Math.max(0, after.overflows - before.overflows),
    kernel_somaxconn: after.somaxconn,
  };
}

/** A warning when the accept queue overflowed (empty when it did not, or was not read). */
export function listenQueueWarnings(figures: ReturnType<typeof listenQueueFigures>): string[] {
  const n = figures.kernel_listen_overflows;
  if (n === null || n === 0) return [];
  return [
    `the kernel's accept queue overflowed ${n} time(s) (net.core.somaxconn = ${figures.kernel_somaxconn ?? 'unknown'}): ` +
      'those clients waited for TCP to resend their handshake and first bytes (1, 3, 7, 15 s ...), and a socket silent past ' +
      "the server's headersTimeout (10 s) is closed: raise net.core.somaxconn above the storm's size (docs/PERFORMANCE.md)",
  ];
}
