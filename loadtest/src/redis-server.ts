// Debian's redis-server on a random port in a temporary directory (no persistence), for the
// bench's `--broker redis`: started before our server, stopped (and the directory removed) after.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../services/shared/free-port.ts';

export interface RedisProcess {
  url: string;
  stop(): Promise<void>;
}

/** True once a Redis server on 127.0.0.1:`port` answers PING. */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500, () => s.destroy());
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

/**
 * redis-server's arguments: 127.0.0.1:`port`, data in `dir`, no RDB snapshots; no append-only file
 * unless `durable` (then every write is fsynced before it is acknowledged).
 */
export function redisServerArgs(port: number, dir: string, durable = false): string[] {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''];
  if (durable) args.push('--appendonly', 'yes', '--appendfsync', 'always');
  else args.push('--appendonly', 'no');
  return args;
}

export async function startRedis(): Promise<RedisProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'http-sse-bench-redis-'));
  const port = await freePort();
  let stderr = '';
  const child = spawn('redis-server', redisServerArgs(port, dir), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`)));
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${stderr}`)));
  });
  failed.catch(() => undefined);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await Promise.race([answersPing(port), failed]);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${port} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
