// The client CLI as a child process (node services/client/src/main.ts), with its output collected.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { ROOT } from './process.ts';

export interface ClientProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Lines of stdout so far (complete lines only). */
  lines(): string[];
  /** Resolves once stdout holds `n` complete lines. */
  waitForLines(n: number, timeoutMs?: number): Promise<string[]>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** Environment without the caller's SSE_* settings, so that tests see only their own. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('SSE_')) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs the CLI to completion. */
export async function runClient(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = spawnClient(args, env, timeoutMs);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Spawns the CLI (node services/client/src/main.ts ...args); killed after `timeoutMs`. */
export function spawnClient(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): ClientProcess {
  const child = spawn(process.execPath, ['services/client/src/main.ts', ...args], {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const lineWaiters: { n: number; resolve: (l: string[]) => void }[] = [];
  const lines = () => out.split('\n').slice(0, -1);
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    const now = lines();
    for (const w of lineWaiters.filter((w) => now.length >= w.n)) w.resolve(now);
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(killer);
    return (code ?? signal) as number | string;
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    lines,
    waitForLines(n, waitMs = 10_000) {
      if (lines().length >= n) return Promise.resolve(lines());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `waited for ${n} lines; stdout=${JSON.stringify(out)} stderr=${JSON.stringify(err)}`,
              ),
            ),
          waitMs,
        );
        lineWaiters.push({
          n,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    exited,
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
