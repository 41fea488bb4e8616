// Shared tools of the reliability tests: raw sockets, memory readings and a forced GC.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gcFn = runInNewContext('gc') as () => void;

/** A full garbage collection (twice, so finalizers' garbage goes too). */
export async function fullGc(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    gcFn();
    await new Promise((r) => setImmediate(r));
  }
}

/** Heap used after a full GC, in bytes. */
export async function heapAfterGc(): Promise<number> {
  await fullGc();
  return process.memoryUsage().heapUsed;
}

/** Resident set size of a process, in bytes (from /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return Number(kb) * 1024;
}

export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Opens a TCP connection to 127.0.0.1:port and resolves once it is connected. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Sends a request on a new socket and resolves with the socket once the status line arrived. */
export async function openRaw(
  port: number,
  request: string,
): Promise<{ socket: net.Socket; head: string }> {
  const socket = await connect(port);
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.off('data', onData);
        resolve({ socket, head: text.slice(0, end) });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed before a response head: ${text}`)));
    socket.write(request);
  });
}

/** The status code of a raw HTTP response text. */
export const statusOf = (raw: string) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0);

/** The JSON body of a raw HTTP response with Content-Length. */
export function jsonBodyOf(raw: string): Record<string, unknown> {
  return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
}
