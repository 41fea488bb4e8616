// N idle subscribers on one channel through the project's client library (one shared undici
// Agent), opened at a ramp rate, for the `connections` scenario: how many opened, how many failed
// and why. (The fan-out scenarios read streams in worker processes: fanout/worker.ts.)
import { Agent } from 'undici';
import { connectEventStream, type EventStreamHandle } from '../../services/client/src/index.ts';

export interface SubscriberPoolOptions {
  url: string;
  count: number;
  onProgress?: (opened: number) => void;
  /** New connections per second while opening (0: as fast as possible). */
  rampRate?: number;
}

const ignoreEvent = () => undefined;

export class SubscriberPool {
  private readonly handles: EventStreamHandle[] = [];
  private readonly agent = new Agent({ connections: null, pipelining: 1, connectTimeout: 30_000 });
  opened = 0;
  failed = 0;
  /** Failures by the client's error reason (refused, timeout, http_status, network, ...). */
  readonly errors = new Map<string, number>();

  /** Opens the subscribers; resolves when every one is open (or failed). */
  async open(options: SubscriberPoolOptions): Promise<void> {
    const { count, rampRate = 0 } = options;
    const batch = rampRate > 0 ? Math.max(1, Math.round(rampRate / 20)) : 250;
    const pause = rampRate > 0 ? (1000 * batch) / rampRate : 0;
    const opening: Promise<void>[] = [];
    for (let i = 0; i < count; i += batch) {
      const started = performance.now();
      for (let j = i; j < Math.min(count, i + batch); j++) opening.push(this.openOne(options));
      const wait = pause - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else await new Promise((r) => setImmediate(r));
    }
    await Promise.all(opening);
  }

  private openOne(options: SubscriberPoolOptions): Promise<void> {
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        resolve();
      };
      const handle = connectEventStream(options.url, {
        dispatcher: this.agent,
        onOpen: () => {
          this.opened++;
          options.onProgress?.(this.opened);
          settle();
        },
        onError: (err) => {
          this.errors.set(err.reason, (this.errors.get(err.reason) ?? 0) + 1);
          if (!settled) {
            this.failed++;
            settle();
          }
        },
        onEvent: ignoreEvent,
      });
      this.handles.push(handle);
    });
  }

  async close(): Promise<void> {
    for (const h of this.handles) h.close();
    await Promise.all(this.handles.map((h) => h.done.catch(() => undefined)));
    await this.agent.close();
  }
}
