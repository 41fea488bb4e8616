// A replay storm: many clients resume the same channel at once (raw sockets spread over child
// processes, so that reading ~1 GB of replays is not bottlenecked in the test process), and every
// one must get 200 and exactly the expected events. See replay-storm-worker.ts.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export interface StormJob {
  port: number;
  /** The raw request every connection sends. */
  request: string;
  /** The ids the replay must hold, in order (the connection is done after the last). */
  expected: string[];
  clients: number;
  timeoutMs: number;
}

export interface StormOutcome {
  status: number;
  events: number;
  /** null when the connection got exactly the expected events. */
  failure: string | null;
}

export interface StormResult {
  clients: number;
  complete: number;
  /** Count of connections per status code (0: no response head). */
  statuses: Record<string, number>;
  /** The first few failures, for the assertion message. */
  failures: string[];
  failed: number;
  elapsedMs: number;
}

const WORKER = fileURLToPath(new URL('./replay-storm-worker.ts', import.meta.url));

/** `clients` concurrent resumes over `workers` processes; resolves once every one is settled. */
export async function replayStorm(
  job: Omit<StormJob, 'clients'>,
  clients: number,
  workers = 4,
): Promise<StormResult> {
  const started = Date.now();
  const shares = Array.from(
    { length: workers },
    (_, w) => Math.floor(clients / workers) + (w < clients % workers ? 1 : 0),
  ).filter((n) => n > 0);
  const children = shares.map(() =>
    fork(WORKER, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  const killers = children.map((c) => setTimeout(() => c.kill('SIGKILL'), job.timeoutMs + 10_000));
  try {
    const results = await Promise.all(
      children.map(async (child, w) => {
        const answer = once(child, 'message').then(([m]) => m as StormOutcome[]);
        const exited = once(child, 'exit').then(([code, signal]) => `${code ?? signal}`);
        child.send({ ...job, clients: shares[w]! } satisfies StormJob);
        const first = await Promise.race([answer, exited]);
        if (typeof first === 'string') {
          throw new Error(`replay-storm worker exited (${first}) without an answer`);
        }
        return first;
      }),
    );
    const all = results.flat();
    const statuses: Record<string, number> = {};
    for (const o of all) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    const failed = all.filter((o) => o.failure !== null);
    return {
      clients: all.length,
      complete: all.length - failed.length,
      statuses,
      failures: failed.slice(0, 5).map((o) => o.failure!),
      failed: failed.length,
      elapsedMs: Date.now() - started,
    };
  } finally {
    for (const t of killers) clearTimeout(t);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
