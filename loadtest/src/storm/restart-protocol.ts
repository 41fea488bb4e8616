// Messages between the restart storm's coordinator (scenarios/storm-restart.ts) and its workers
// (storm/restart-worker.ts), over the child_process IPC channel. Histograms travel HDR-encoded.
import type { ProcessLoad } from '../fanout/protocol.ts';

export type RestartRequest =
  /** Open one live subscriber per URL (no Last-Event-ID); K events will follow the restart. */
  | { type: 'open'; urls: string[]; history: number; eventBytes: number }
  /** How far the subscribers have got. */
  | { type: 'progress' }
  /** The ids of seq 0..K (seq 0: the live event; 1..K: published after the restart). */
  | { type: 'ids'; ids: string[] }
  /** Stop: subscribers not served by now are timed out; the stats. */
  | { type: 'collect' }
  | { type: 'close' };

export type RestartReply =
  | { type: 'opened'; opened: number; failed: Record<string, number> }
  | { type: 'progress'; progress: RestartProgress }
  | { type: 'ok' }
  | { type: 'stats'; stats: RestartStats }
  | { type: 'closed' };

export interface RestartProgress {
  /** Subscribers that got the live event (seq 0). */
  live: number;
  /** Subscribers whose live stream ended (the restart). */
  dropped: number;
  /** Subscribers with every one of seq 1..K. */
  served: number;
  /** Subscribers that will not get further: served, or given up (never opened). */
  settled: number;
}

export interface RestartStats extends RestartProgress {
  subscribers: number;
  /** Opened before the restart (a 200 event stream). */
  opened: number;
  /** Did not open before the restart, by reason. */
  openFailed: Record<string, number>;
  /** Connection attempts after the drop, and those that brought no stream, by reason. */
  attempts: number;
  refused: Record<string, number>;
  /** Subscribers that needed more than one attempt after the drop. */
  retried: number;
  /** Subscribers told `event: reset` after the restart, by reason. */
  reset: Record<string, number>;
  /** Distinct seqs 1..K received after the drop, over every subscriber. */
  replayed: number;
  /** Subscribers that took events from the shared stream (compared, not parsed). */
  shared: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  corrupted: number;
  /** HDR histograms (microseconds): the serving attempt's connect -> seq 1..K all in; drop -> it. */
  fullReplay: string;
  reconnectWait: string;
  /** Epoch ms: first and last drop, first and last subscriber served (null: none). */
  firstDropAt: number | null;
  lastDropAt: number | null;
  firstServedAt: number | null;
  lastServedAt: number | null;
  load: ProcessLoad;
}
