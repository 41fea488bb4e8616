// A tiny process around authorize() for the SIGHUP test: reads the server config as the server
// does (config file + environment), answers GET /<op>/<channel> on 127.0.0.1 with the decision as
// JSON, logs JSON lines on stdout (the first one: {"event":"listening","port":N}), re-reads the
// key files on SIGHUP only (no file watching, so the signal is what is tested), exits on SIGTERM.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAuthorizer } from '../../services/server/src/auth/access.ts';
import { loadServerConfig } from '../../services/server/src/config.ts';
import { createLogger } from '../../services/server/src/logger.ts';

const logger = createLogger('info');
const authz = await createAuthorizer(loadServerConfig(process.env), {
  logger,
  watchKeys: false,
  reloadOnSighup: true,
});
const server = createServer(async (req, res) => {
  const [, op, channel] = (req.url ?? '/').split('?')[0]!.split('/');
  const d = await authz.authorize(op === 'publish' ? 'publish' : 'subscribe', channel ?? '', req);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(d));
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  logger.info({ event: 'listening', port }, 'auth harness listening');
});
process.on('SIGTERM', () => {
  authz.close();
  server.close();
  process.exit(0);
});
