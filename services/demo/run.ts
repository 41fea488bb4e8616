// `npm run demo`: what the tRPC-Cpp example's run.sh does. Starts the server, runs the client
// against /sse/test, prints its ten events and `SSE stream finished`, then stops the server.
// The server listens on a free port (PORT=0) so a server already running on 24856 is no obstacle.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['services/server/src/main.ts'], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (text: string) => {
      buffered += text;
      for (const line of buffered.split('\n')) {
        if (!line.includes('"event":"listening"')) continue;
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve({ child, port: Number((JSON.parse(line) as { port: number }).port) });
        return;
      }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.once('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
  });
}

let server: ChildProcess | undefined;
let status = 1;
try {
  const started = await startServer();
  server = started.child;
  const url = `http://127.0.0.1:${started.port}/sse/test`;
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
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
}
process.exit(status);
