// Messages between the storm coordinator (scenarios/storm.ts) and its subscriber workers
// (storm/worker.ts), over the child_process IPC channel. Histograms travel HDR-encoded (base64).
import type { ProcessLoad } from '../fanout/protocol.ts';

export type StormRequest =
  /** Build the expected replay and the requests; `urls`: one per subscriber of this worker. */
  | { type: 'prepare'; urls: string[]; ids: string[]; eventBytes: number }
  /** Connect every subscriber at `startAt` (epoch ms); stop waiting at `deadline`. */
  | { type: 'go'; startAt: number; deadline: number }
  | { type: 'close' };

export type StormReply =
  | { type: 'ready' }
  | { type: 'stats'; stats: StormStats }
  | { type: 'closed' };

export interface StormStats {
  subscribers: number;
  served: number;
  timedOut: number;
  /** Subscribers by reason: `http_<status>` or the notice's name. */
  refused: Record<string, number>;
  /** Subscribers by the reset's reason. */
  reset: Record<string, number>;
  /** Subscribers by error: a socket error code, ended_early, connection_closed, ... */
  failed: Record<string, number>;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  corrupted: number;
  /** Distinct replayed events received, over every subscriber. */
  replayed: number;
  /** Subscribers whose body was verified, in part or whole, by comparison with the reference. */
  compared: number;
  /** HDR histograms (microseconds): connect start -> first replayed event, -> the last one. */
  firstEvent: string;
  fullReplay: string;
  /** When the last subscriber of this worker was served (epoch ms), or null. */
  lastServedAt: number | null;
  /** Subscribers served in each second since `startAt`: [second, count]. */
  servedPerSecond: [number, number][];
  /** How long the loop that connected every subscriber took (ms). */
  connectLoopMs: number;
  /** CPU and event-loop delay from the end of that loop until every subscriber had an outcome. */
  load: ProcessLoad;
}
