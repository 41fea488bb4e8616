// Memory readings for leak and cost tests: a forced full GC, heap after it, a process's RSS.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gcFn = runInNewContext('gc') as () => void;

/**
 * A full garbage collection, twice, so finalizers' garbage goes too. `pauseMs` between them gives
 * V8's concurrent ArrayBuffer sweeper time to return socket buffers.
 */
export async function fullGc(pauseMs = 0): Promise<void> {
  for (let i = 0; i < 2; i++) {
    gcFn();
    await new Promise((r) => (pauseMs > 0 ? setTimeout(r, pauseMs) : setImmediate(r)));
  }
}

/** Heap used after a full GC, in bytes. */
export async function heapAfterGc(): Promise<number> {
  await fullGc();
  return process.memoryUsage().heapUsed;
}

/** Resident set size of a process, in bytes (from /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return Number(kb) * 1024;
}

export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
