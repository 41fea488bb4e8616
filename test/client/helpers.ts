// Client test helpers: tiny node:http servers that send exact bytes, and the CLI as a child process.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

/** The example stream: 10 events, ids 1..10 (idx = N). */
export function exampleEvent(n: number): string {
  return `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
}

export function exampleLine(n: number): string {
  return `Received SSE event - id: ${n}, event: message, data: {"msg": "hello", "idx": ${n}}`;
}

export interface SeenRequest {
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => unknown;

export interface TestServer {
  port: number;
  url: (path?: string) => string;
  requests: SeenRequest[];
  /** Resolves once `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a node:http server on 127.0.0.1:0 whose handler gets the request number (1-based). */
export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve();
    res.on('error', () => {});
    Promise.resolve(handler(req, res, requests.length)).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: (path = '/sse') => `http://127.0.0.1:${port}${path}`,
    requests,
    waitForRequests(n, timeoutMs = 10_000) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`waited for ${n} requests, got ${requests.length}`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

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

export { eventually } from '../helpers/wait.ts';
