// A real Redis for tests: Debian's redis-server on a random port, append-only persistence in a
// temporary directory (appendfsync always, so an acknowledged write survives SIGKILL), stopped
// and removed by stop(). restart() keeps the port and the data.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answersPing, redisServerArgs } from '../../loadtest/src/redis-server.ts';
import { eventually } from '../../services/shared/eventually.ts';
import { freePort } from '../../services/shared/free-port.ts';

export interface TestRedis {
  port: number;
  url: string;
  /** Stops the server (SIGKILL: an abrupt crash; SIGTERM: a clean stop). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /**
   * SIGSTOP: a hung Redis. The process and its connections stay open, nothing is answered (no
   * error, no close) until resume().
   */
  pause(): void;
  /** SIGCONT after pause(): Redis answers again, starting with what was sent while it was stopped. */
  resume(): void;
  stop(): Promise<void>;
}

/** Why Redis tests cannot run here, or null when redis-server is installed. */
export function missingRedis(): string | null {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'redis-server is not installed (apt-get install redis-server)';
}

export async function startRedis(port?: number): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'http-sse-redis-'));
  port ??= await freePort();
  let child: ChildProcess | null = null;
  let paused = false;
  const launch = async () => {
    child = spawn('redis-server', redisServerArgs(port, dir, true), { stdio: 'ignore' });
    await eventually(() => answersPing(port), 10_000, `redis-server on ${port}`);
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const c = child as ChildProcess | null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    // A stopped process takes SIGKILL at once; any other signal waits for SIGCONT: send it.
    if (paused && signal !== 'SIGKILL') c.kill('SIGCONT');
    paused = false;
    c.kill(signal);
    await exited;
    child = null;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    pause() {
      const c = child as ChildProcess | null;
      if (c === null || c.exitCode !== null || c.signalCode !== null || paused) return;
      c.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      const c = child as ChildProcess | null;
      if (c === null || !paused) return;
      paused = false;
      c.kill('SIGCONT');
    },
    async stop() {
      await kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
