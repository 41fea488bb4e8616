// A raw receiver's socket: connected with Nagle off, and read into one buffer that every socket of
// this thread shares (node's `onread`), so a read allocates nothing. By default node allocates a
// 64 KiB buffer for every read and copies what was read into a buffer of its size: at a storm's
// 11 GB (10,000 replays of 1.1 MB) that cost the two reader processes 11-12 s of CPU against 4-5 s
// with one reused buffer (`node loadtest/loopback-bulk-cost.ts`, `--reuse`). Reads run one at a
// time on the thread, so one buffer is enough; the price is that the bytes handed to `onBytes` are
// valid only during the call: whoever keeps them copies them (http-response.ts and sse-reader.ts
// copy what they carry to the next read).
import net from 'node:net';
import type { RawTarget } from './request.ts';

/** The largest read (a socket's receive queue rarely holds more on loopback). */
const READ_BUFFER_BYTES = 256 * 1024;

let shared: Buffer | null = null;

/** This thread's read buffer (made on first use). */
function readBuffer(): Buffer {
  shared ??= Buffer.allocUnsafe(READ_BUFFER_BYTES);
  return shared;
}

/**
 * Connects to `target`; every read is handed to `onBytes` as a view of the shared buffer, valid
 * until `onBytes` returns. Errors and close come as the socket's usual events.
 */
export function connectReading(target: RawTarget, onBytes: (bytes: Buffer) => void): net.Socket {
  return net.connect({
    host: target.host,
    port: target.port,
    noDelay: true,
    onread: {
      buffer: readBuffer(),
      callback: (nread: number, buf: Uint8Array) => {
        onBytes((buf as Buffer).subarray(0, nread));
        return true;
      },
    },
  });
}
