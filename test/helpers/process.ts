// Runs the server as a real process (node services/server/src/main.ts) on a random port.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  type SpawnedServer,
  spawnServer as spawnShared,
} from '../../services/shared/spawn-server.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type ServerProcess = SpawnedServer;

/** Starts the server with PORT=0 and waits for its `listening` log line. */
export function spawnServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  return spawnShared('services/server/src/main.ts', { env });
}

/** Runs a node script to completion and returns its exit code and output. */
export async function runNode(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return { code: code as number | null, stdout, stderr };
}
