// Runs autocannon with its progress bar on stderr and collects its per-second ticks.
import type { EventEmitter } from 'node:events';
import autocannon from 'autocannon';

export interface CannonRun {
  result: autocannon.Result;
  /** Responses completed in each second of the run. */
  perSecond: number[];
}

export function runCannon(options: autocannon.Options, progress: boolean): Promise<CannonRun> {
  const perSecond: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (err, result) => {
      if (err) reject(err);
      else resolve({ result, perSecond });
    });
    // The 'tick' event (one per second, with the responses completed in it) is not in the types.
    (instance as unknown as EventEmitter).on('tick', (t: { counter: number }) =>
      perSecond.push(t.counter),
    );
    autocannon.track(instance, {
      outputStream: process.stderr,
      renderProgressBar: progress,
      renderResultsTable: false,
      renderLatencyTable: false,
    });
  });
}
