// One way to start a server process and wait until it listens: `node <script>` with PORT=0 (any
// free port) by default, reading its JSON log lines on stdout until `{"event":"listening",
// "port":N}`. Used by the demo, the fan-out bench and the tests. Rejects with the process's stderr
// when it exits first or does not listen within `timeoutMs`.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface SpawnServerOptions {
  /** Extra environment (merged over process.env and HOST=127.0.0.1 PORT=0 LOG_LEVEL=info). */
  env?: Record<string, string | undefined>;
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** How long to wait for the listening line (default 15 s). */
  timeoutMs?: number;
  /** `inherit` passes the server's stderr through; `pipe` (default) keeps it for errors. */
  stderr?: 'pipe' | 'inherit';
}

export interface SpawnedServer {
  child: ChildProcess;
  port: number;
  base: string;
  /** Log lines (parsed JSON) written so far; unparsable lines as `{ unparsed }`. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Collects the child's stdout JSON log lines into `logs` and resolves with the port of the first
 * `listening` line; rejects when the child exits first or after `timeoutMs` (then kills it).
 */
function listeningPort(
  child: ChildProcess,
  exited: Promise<number | string>,
  logs: Record<string, unknown>[],
  why: () => string,
  timeoutMs: number,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`did not listen within ${timeoutMs} ms: ${why()}`));
    }, timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.event === 'listening') {
            clearTimeout(timer);
            resolve(Number(entry.port));
          }
        } catch {
          logs.push({ unparsed: line });
        }
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before listening: ${why().trim()}`));
    });
  });
}

export async function spawnServer(
  script: string,
  options: SpawnServerOptions = {},
): Promise<SpawnedServer> {
  const child = spawn(process.execPath, [script], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', options.stderr ?? 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const port = await listeningPort(
    child,
    exited,
    logs,
    () => err,
    options.timeoutMs ?? 15_000,
  ).catch((e: Error) => {
    throw new Error(`${script} ${e.message}`);
  });
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  return {
    child,
    port,
    base: `http://127.0.0.1:${port}`,
    logs,
    stderr: () => err,
    exited,
    kill,
    async stop(graceMs = 7000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
