// The kernel's TCP memory (/proc/net/sockstat, "TCP: ... mem N", in pages), for logging what
// never-reading clients leave in socket buffers. Shared by every process on the machine: log it,
// do not assert on its value.
import { readFileSync } from 'node:fs';

export function tcpMemPages(): number {
  const text = readFileSync('/proc/net/sockstat', 'utf8');
  return Number(/^TCP:.*\bmem (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

export const pagesToMb = (pages: number) => `${((pages * 4096) / 1024 / 1024).toFixed(1)} MB`;
