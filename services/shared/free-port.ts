// A port nobody listens on right now (127.0.0.1), for tests and harness runs that start servers.
import { once } from 'node:events';
import net from 'node:net';

export async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  srv.close();
  await once(srv, 'close');
  return port;
}
