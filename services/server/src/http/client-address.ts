// The address of the client behind a request: the socket's peer, or, when that peer is a trusted
// proxy (config trustProxy), the address the proxy put in X-Forwarded-For. proxy-addr (express's
// own `trust proxy` implementation) walks the header from the right and stops at the first address
// that is not trusted, so a forged X-Forwarded-For from anyone else is ignored.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import proxyaddr from 'proxy-addr';

/** Returns the client address of a request (never throws; 'unknown' without a peer address). */
export type ClientAddressOf = (req: IncomingMessage) => string;

const socketAddress: ClientAddressOf = (req) => req.socket.remoteAddress ?? 'unknown';

/** The client-address function for a trustProxy list (empty: the socket's peer, always). */
export function clientAddressOf(trustProxy: readonly string[]): ClientAddressOf {
  if (trustProxy.length === 0) return socketAddress;
  const trust = proxyaddr.compile([...trustProxy]);
  return (req) => {
    const peer = req.socket.remoteAddress;
    if (peer === undefined) return 'unknown';
    const address = proxyaddr(req, trust);
    // A trusted proxy that passed on something other than an address: keep the proxy's own.
    return isIP(address) === 0 ? peer : address;
  };
}
