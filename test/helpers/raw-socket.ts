// Raw TCP for tests that send bytes no HTTP client would: connect, send, read heads and bodies.
import net from 'node:net';

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

/** A new connection whose every received byte is kept: `closed` resolves with them at close. */
export async function recordUntilClose(
  port: number,
): Promise<{ socket: net.Socket; closed: Promise<string>; started: number }> {
  const socket = await connect(port);
  let raw = '';
  socket.on('data', (c: Buffer) => {
    raw += c.toString('latin1');
  });
  const closed = new Promise<string>((r) => socket.once('close', () => r(raw)));
  return { socket, closed, started: Date.now() };
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

/**
 * A client that sends `request` and never reads: paused before it connects, so not a byte of the
 * answer leaves the kernel's receive buffer (the server's writes stay in kernel buffers until they
 * are full). Resolves once the request was handed to the kernel. `closed` resolves when the socket
 * closes, which a never-reading socket only notices once it reads again (resume()).
 */
export function connectNeverReading(
  port: number,
  request: string,
): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      socket.write(request, () => resolve({ socket, closed }));
    });
    socket.once('error', reject);
  });
}
