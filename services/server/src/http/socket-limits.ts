// Bounds on the server's sockets: explicit HTTP timeouts, a header size limit, a cap on open
// sockets of any kind (shed before the process runs out of file descriptors), JSON answers for
// requests node's parser refuses, and the open-file-limit check at start.
//   headersTimeout     10 s   the request line and headers must arrive within it (slowloris)
//   requestTimeout     30 s   the whole request, body included (408). Measured until the request
//                             is received, so a stream (a GET with no body) is never cut by it.
//   keepAliveTimeout    5 s   an idle keep-alive socket is closed after it
//   maxHeaderSize      16 KiB larger request heads get 431
// Node checks the two request timeouts every connectionsCheckingInterval (1 s).
import { readFileSync } from 'node:fs';
import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { acceptQueueCap } from '../../../shared/somaxconn.ts';
import { endSocketWithJson } from './errors.ts';

export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const MAX_HEADER_BYTES = 16 * 1024;
/** Sockets beyond maxConnections for publishes, metrics, health checks and idle keep-alive. */
export const SOCKET_HEADROOM = 1024;
/** File descriptors the process needs besides its sockets (stdio, epoll, Redis, files). */
export const FD_RESERVE = 64;

/** The node:http options that carry the bounds above. */
export function boundedServerOptions(): ServerOptions {
  return {
    noDelay: true,
    keepAlive: true,
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: 1000,
    maxHeaderSize: MAX_HEADER_BYTES,
    // A missing Host gets the JSON 400 of missingHost() instead of node's empty one.
    requireHostHeader: false,
  };
}

/** The soft open-file limit of this process (`ulimit -n`), or null when it cannot be read. */
export function openFileLimit(procLimits = '/proc/self/limits'): number | null {
  try {
    const line = readFileSync(procLimits, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** limits.maxSockets, or for 0 maxConnections + headroom capped below the open-file limit. */
export function socketCap(maxSockets: number, maxConnections: number, fdLimit: number | null) {
  if (maxSockets > 0) return maxSockets;
  const wanted = maxConnections + SOCKET_HEADROOM;
  return fdLimit === null ? wanted : Math.max(1, Math.min(wanted, fdLimit - FD_RESERVE));
}

/**
 * Applies the socket cap to `server` (node closes sockets beyond server.maxConnections at once)
 * and logs the sheds at most every 10 s; warns when the open-file limit is too low for the config.
 */
export function limitSockets(
  server: Server,
  limits: { maxSockets: number; maxConnections: number },
  logger: Logger,
  fdLimit = openFileLimit(),
): number {
  const cap = socketCap(limits.maxSockets, limits.maxConnections, fdLimit);
  server.maxConnections = cap;
  const needed = limits.maxConnections + SOCKET_HEADROOM + FD_RESERVE;
  if (fdLimit !== null && needed > fdLimit) {
    logger.warn(
      { event: 'fd_limit_low', openFileLimit: fdLimit, needed, maxSockets: cap },
      `the open-file limit (${fdLimit}) is below limits.maxConnections + ${SOCKET_HEADROOM + FD_RESERVE} (${needed}): raise ulimit -n or lower limits.maxConnections; sockets are capped at ${cap}`,
    );
  }
  let shed = 0;
  let lastLog = 0;
  server.on('drop', () => {
    shed++;
    const now = Date.now();
    if (now - lastLog < 10_000) return;
    lastLog = now;
    logger.warn(
      { event: 'sockets_shed', shed, maxSockets: cap },
      'limits.maxSockets reached: new sockets are closed at once',
    );
  });
  return cap;
}

/**
 * Says at start when the kernel caps the accept queue below limits.maxConnections: more clients
 * than that connecting at once (a reconnect storm after a restart) overflow it, the kernel drops
 * their handshakes and they wait for TCP to resend (1, 3, 7, 15 s), and one whose first bytes
 * come after headersTimeout is closed (docs/PERFORMANCE.md, the one-shot storm). Returns the cap.
 */
export function reportAcceptQueue(
  maxConnections: number,
  logger: Logger,
  cap = acceptQueueCap(),
): number | null {
  if (cap !== null && cap < maxConnections) {
    logger.info(
      { event: 'accept_queue_capped', somaxconn: cap, maxConnections },
      `the kernel caps the accept queue at net.core.somaxconn (${cap}), below limits.maxConnections (${maxConnections}): more clients than that reconnecting at once wait for TCP to resend their handshakes; raise net.core.somaxconn for storms that large`,
    );
  }
  return cap;
}

/**
 * A socket that connects and sends nothing is closed once it has been silent for
 * server.headersTimeout (one timer per new socket, cleared when it closes). Node 24's own check
 * also counts headersTimeout from the connection for such a socket (a 408 at the next
 * connectionsCheckingInterval, measured 6 Dec 2026); this rule does not depend on that, which
 * older releases did not do. Either way a client whose first bytes TCP must resend after an
 * accept-queue overflow can be cut (reportAcceptQueue).
 */
export function closeSilentSockets(server: Server): void {
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(closeIfSilent, server.headersTimeout, socket);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

function closeIfSilent(socket: Socket): void {
  if (socket.bytesRead === 0) socket.destroy();
}

/** The answer to a request node's HTTP parser refused, by error code. */
function clientErrorAnswer(code: string | undefined): [number, string, string] {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return [431, 'headers_too_large', `the request head is larger than ${MAX_HEADER_BYTES} bytes`];
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return [
      408,
      'request_timeout',
      `the request did not arrive within ${HEADERS_TIMEOUT_MS / 1000} s (headers) or ${REQUEST_TIMEOUT_MS / 1000} s (whole request)`,
    ];
  }
  return [400, 'bad_request', 'malformed HTTP request'];
}

/** The server's 'clientError' handler: a JSON answer when nothing of a response was sent yet. */
export function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, error, message] = clientErrorAnswer(err.code);
  endSocketWithJson(socket, status, { error, message });
}
