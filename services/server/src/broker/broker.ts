// The broker carries published events to every hub that serves the channel. The hub sits on this
// interface only, so an in-memory broker (one process) and a networked one (several replicas) are
// interchangeable.

/** An event as a publisher gives it: data is already a string. */
export interface EventInput {
  readonly event?: string;
  readonly data: string;
}

/** An event with the id the broker assigned (strictly increasing per channel). */
export interface BrokerEvent extends EventInput {
  readonly id: number;
}

export type BrokerListener = (channel: string, events: readonly BrokerEvent[]) => void;

export interface Broker {
  /**
   * Assigns ids to the events, in order, and delivers them to the listener of every hub that
   * joined the channel (this process's included). Resolves with the ids.
   */
  publish(channel: string, events: readonly EventInput[]): Promise<number[]>;
  /** Where this process's hub receives events. */
  setListener(listener: BrokerListener): void;
  /** This process has subscribers or history for the channel. */
  join(channel: string): void;
  /** This process no longer keeps anything for the channel. */
  leave(channel: string): void;
  close(): Promise<void>;
}
