// The load a harness process is under: event-loop delay and CPU over a window.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ProcessLoad } from './protocol.ts';

export class LoadMonitor {
  private readonly delay = monitorEventLoopDelay({ resolution: 10 });
  private cpu = process.cpuUsage();
  private since = performance.now();

  constructor() {
    this.delay.enable();
  }

  /** Starts a new window. */
  reset(): void {
    this.delay.reset();
    this.cpu = process.cpuUsage();
    this.since = performance.now();
  }

  read(): ProcessLoad {
    const used = process.cpuUsage(this.cpu);
    const wallUs = (performance.now() - this.since) * 1000;
    const p99 = this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0;
    return {
      eventLoopP99Ms: p99,
      cpuPct: wallUs > 0 ? ((used.user + used.system) / wallUs) * 100 : 0,
    };
  }

  stop(): void {
    this.delay.disable();
  }
}
