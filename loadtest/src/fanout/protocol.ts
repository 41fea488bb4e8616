// Messages between the fan-out coordinator and its child processes (subscriber workers and the
// publisher), over the child_process IPC channel. Histograms travel HDR-encoded (base64).

export interface ProcessLoad {
  /** Event-loop delay p99 over the measured window, ms (perf_hooks.monitorEventLoopDelay). */
  eventLoopP99Ms: number;
  /** CPU time (user + system) over the measured window, in % of one core. */
  cpuPct: number;
}

/**
 * Several-channel streams (`--channels-per-stream N` > 1): every URL is /sse/streams over the
 * channels `<prefix>0` .. `<prefix><count-1>`; null: each URL is one channel's own route.
 */
export interface StreamChannelsSpec {
  prefix: string;
  count: number;
}

export type WorkerRequest =
  | { type: 'open'; urls: string[]; streams: StreamChannelsSpec | null }
  /** A step starts: latency is recorded for events published from `fromTs` (epoch ms) on. */
  | { type: 'measure'; fromTs: number; payloadBytes: number }
  | { type: 'count'; from: number; to: number }
  | { type: 'collect'; from: number; to: number; rejected: number[]; forget: boolean }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'opened'; opened: number; failed: number; errors: Record<string, number> }
  | { type: 'count'; received: number }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'closed' };

export interface WorkerStats {
  /** Subscribers the raw receiver read, in part or whole, through its shared stream. */
  shared: number;
  /** Deliveries of seqs in the collected range (first receipt only). */
  deliveries: number;
  /** Deliveries whose latency was recorded (publish ts at or after the measure start). */
  measured: number;
  expected: number;
  lost: number;
  duplicated: number;
  /**
   * Events whose server id was lower than one the subscriber had received before (several-channel
   * streams: lower than one of the same channel, read off the cursor).
   */
  outOfOrder: number;
  /** Events whose data was not the publisher's (a wrong byte, unreadable seq). */
  corrupted: number;
  /** HDR histogram of delivery latency in microseconds, compressed base64. */
  histogram: string;
  /** Measured deliveries per whole epoch second: [second, count]. */
  perSecond: [number, number][];
  firstArrivalMs: number | null;
  lastArrivalMs: number | null;
  load: ProcessLoad;
  errors: Record<string, number>;
}

export interface PublishRequest {
  type: 'publish';
  urls: string[];
  /** Seq n goes to channels[n % channels.length] (round-robin: each gets rate / length per s). */
  channels: string[];
  token: string;
  /** Publishes per second, all channels together. */
  rate: number;
  warmupMs: number;
  durationMs: number;
  startSeq: number;
  /** Publishes in flight at most; a send due while this many are pending is skipped. */
  concurrency: number;
  payloadBytes: number;
  /** Epoch ms at which the schedule starts. */
  startAt: number;
}

export interface PublishResult {
  /** Seqs issued: [startSeq, endSeq). */
  startSeq: number;
  endSeq: number;
  offeredPerS: number;
  /** Accepted (202) publishes scheduled in the measured window, per second of that window. */
  achievedPerS: number;
  accepted: number;
  skipped: number;
  failed: number;
  /** Seqs that were skipped or not answered 202: no subscriber can be expected to get them. */
  rejected: number[];
  /** HDR histogram of publish latency (request sent -> answer), microseconds, measured window. */
  histogram: string;
  errors: Record<string, number>;
  load: ProcessLoad;
}
