// The in-process broker: ids from a per-channel counter (1, 2, 3, ...), delivery by a direct call.
import type { Broker, BrokerEvent, BrokerListener, EventInput } from './broker.ts';

export class MemoryBroker implements Broker {
  private listener: BrokerListener | null = null;
  private readonly lastIds = new Map<string, number>();

  setListener(listener: BrokerListener): void {
    this.listener = listener;
  }

  publish(channel: string, events: readonly EventInput[]): Promise<number[]> {
    let id = this.lastIds.get(channel) ?? 0;
    const out: BrokerEvent[] = new Array(events.length);
    const ids: number[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      id++;
      const e = events[i]!;
      out[i] = e.event === undefined ? { id, data: e.data } : { id, event: e.event, data: e.data };
      ids[i] = id;
    }
    this.lastIds.set(channel, id);
    this.listener?.(channel, out);
    return Promise.resolve(ids);
  }

  join(_channel: string): void {
    // Every publish reaches this process's listener; nothing to subscribe to.
  }

  /**
   * The hub forgot the channel (no subscribers, no history for historyTtlMs): so does the broker,
   * to hold no memory per channel name ever seen. Its ids then start again at 1, and a client that
   * comes back with an older id gets the hub's explicit `reset`.
   */
  leave(channel: string): void {
    this.lastIds.delete(channel);
  }

  close(): Promise<void> {
    this.listener = null;
    return Promise.resolve();
  }
}
