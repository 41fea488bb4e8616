// N subscribers on one channel through the project's client library, measuring delivery latency
// (HDR histogram) and checking every subscriber for lost and duplicated events by event id.
import * as hdr from 'hdr-histogram-js';
import { Agent } from 'undici';
import { connectEventStream, type EventStreamHandle } from '../../services/client/src/index.ts';

/** Per-subscriber bookkeeping: O(1) memory whatever the number of events. */
interface Track {
  handle: EventStreamHandle;
  first: number; // first event id seen, 0 before any
  last: number;
  received: number;
  duplicates: number;
  gaps: number; // ids skipped between consecutive events
}

export interface DeliveryStats {
  subscribers: number;
  deliveries: number;
  lost: number;
  duplicated: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number } | null;
  /** Latency percentiles (percentile -> ms) for the chart. */
  distribution: { percentile: number; ms: number }[];
  /** Deliveries counted per second of the run. */
  perSecond: number[];
}

export interface SubscriberPoolOptions {
  url: string;
  count: number;
  headers?: Record<string, string>;
  onProgress?: (opened: number) => void;
  /** New connections per second while opening (0: as fast as possible). */
  rampRate?: number;
}

/** Reads the publish timestamp from event data `{"ts":<ms since epoch>,...}` without JSON.parse. */
export function publishTime(data: string): number {
  const at = data.indexOf('"ts":');
  return at < 0 ? Number.NaN : Number.parseFloat(data.slice(at + 5, at + 30));
}

export class SubscriberPool {
  private readonly tracks: Track[] = [];
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  private readonly agent = new Agent({ connections: null, pipelining: 1, connectTimeout: 30_000 });
  private readonly perSecond: number[] = [];
  private startedAt = 0;
  private recording = false;
  opened = 0;
  failed = 0;
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
      const track: Track = {
        handle: undefined as unknown as EventStreamHandle,
        first: 0,
        last: 0,
        received: 0,
        duplicates: 0,
        gaps: 0,
      };
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        resolve();
      };
      track.handle = connectEventStream(options.url, {
        dispatcher: this.agent,
        headers: options.headers,
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
        onEvent: (ev) => this.onEvent(track, ev.id, ev.data),
      });
      this.tracks.push(track);
    });
  }

  private onEvent(track: Track, idText: string, data: string): void {
    const id = Number(idText);
    if (track.first === 0) track.first = id;
    else if (id <= track.last) {
      track.duplicates++;
      return;
    } else if (id > track.last + 1) track.gaps += id - track.last - 1;
    track.last = id;
    track.received++;
    if (!this.recording) return;
    const now = performance.timeOrigin + performance.now();
    const ts = publishTime(data);
    if (ts > 0) this.histogram.recordValue(Math.max(1, Math.round((now - ts) * 1000)));
    const second = Math.floor((performance.now() - this.startedAt) / 1000);
    this.perSecond[second] = (this.perSecond[second] ?? 0) + 1;
  }

  /** Starts measuring latency and counting deliveries per second. */
  startRecording(): void {
    this.startedAt = performance.now();
    this.recording = true;
  }

  /** The highest event id any subscriber received (0 before any). */
  get highestId(): number {
    let max = 0;
    for (const t of this.tracks) if (t.last > max) max = t.last;
    return max;
  }

  /** The lowest first event id any subscriber received (0 before any). */
  get lowestId(): number {
    let min = 0;
    for (const t of this.tracks) if (t.first > 0 && (min === 0 || t.first < min)) min = t.first;
    return min;
  }

  /** Deliveries so far. */
  get deliveries(): number {
    let n = 0;
    for (const t of this.tracks) n += t.received;
    return n;
  }

  /**
   * The figures, given the ids the server assigned to what was published (a contiguous range
   * from one channel): every subscriber must have received each of them exactly once.
   */
  stats(publishedIds: { min: number; max: number } | null): DeliveryStats {
    let lost = 0;
    let duplicated = 0;
    let deliveries = 0;
    for (const t of this.tracks) {
      duplicated += t.duplicates;
      deliveries += t.received;
      if (publishedIds === null) continue;
      if (t.first === 0) {
        lost += publishedIds.max - publishedIds.min + 1;
        continue;
      }
      lost +=
        Math.max(0, t.first - publishedIds.min) + t.gaps + Math.max(0, publishedIds.max - t.last);
    }
    const h = this.histogram;
    const ms = (us: number) => us / 1000;
    const latencyMs =
      h.totalCount === 0
        ? null
        : {
            p50: ms(h.getValueAtPercentile(50)),
            p90: ms(h.getValueAtPercentile(90)),
            p99: ms(h.getValueAtPercentile(99)),
            max: ms(h.maxValue),
            mean: ms(h.mean),
          };
    const percentiles = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100];
    return {
      subscribers: this.tracks.length,
      deliveries,
      lost,
      duplicated,
      latencyMs,
      distribution:
        h.totalCount === 0
          ? []
          : percentiles.map((p) => ({ percentile: p, ms: ms(h.getValueAtPercentile(p)) })),
      perSecond: Array.from(this.perSecond, (v) => v ?? 0),
    };
  }

  async close(): Promise<void> {
    for (const t of this.tracks) t.handle.close();
    await Promise.all(this.tracks.map((t) => t.handle.done.catch(() => undefined)));
    await this.agent.close();
    this.histogram.destroy();
  }
}
