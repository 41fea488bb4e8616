// `npm run demo`: what the tRPC-Cpp example's run.sh does. Starts the server, runs the client
// against /sse/test, prints its ten events and `SSE stream finished`, then stops the server.
// The server listens on a free port (PORT=0) so a server already running on 24856 is no obstacle.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { REPO_ROOT as root, type SpawnedServer, spawnServer } from '../shared/spawn-server.ts';

let server: SpawnedServer | undefined;
let status = 1;
try {
  server = await spawnServer('services/server/src/main.ts', { stderr: 'inherit' });
  const url = `${server.base}/sse/test`;
  process.stderr.write(`demo: server listening, running the client against ${url}\n`);
  const client = spawn(process.execPath, ['services/client/src/main.ts', '--url', url], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const [code] = await once(client, 'exit');
  status = typeof code === 'number' ? code : 1;
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
} finally {
  await server?.stop();
}
process.exit(status);
