// Which Redis master(s) the broker talks to, told once at each change (the broker logs it and
// counts failovers in sse_broker_failovers_total):
//   single / Sentinel  the address of the command connection's peer at each `ready`: another
//                      address than before is a master switch (Sentinel promoted a replica)
//   Cluster            the slot map at each refresh: masters with their slot ranges; a node that
//                      serves slots as a master now and was listed as a replica before is a switch
import type { Cluster, Redis } from 'ioredis';
import { masterConfirmed, onMasterConfirmed } from './redis-connection.ts';

export interface RedisTopology {
  readonly mode: 'single' | 'sentinel' | 'cluster';
  /** `host:port` of each master; with Cluster `host:port slots a-b,c-d`, sorted. */
  readonly masters: readonly string[];
  /** Master switches seen in this change (0 at the first report). */
  readonly failovers: number;
}

export type TopologyListener = (t: RedisTopology) => void;

/**
 * Reports the master of a single or Sentinel connection each time it is ready (with Sentinel:
 * confirmed by the sentinels), when it changed.
 */
export function watchMaster(
  conn: Redis,
  mode: 'single' | 'sentinel',
  report: TopologyListener,
): void {
  let last: string | null = null;
  const check = () => {
    if (conn.status !== 'ready' || !masterConfirmed(conn)) return;
    const s = conn.stream;
    const at = s?.remoteAddress === undefined ? null : `${s.remoteAddress}:${s.remotePort}`;
    if (at === null || at === last) return;
    const failovers = last === null ? 0 : 1;
    last = at;
    report({ mode, masters: [at], failovers });
  };
  conn.on('ready', check);
  onMasterConfirmed(conn, check);
}

/** `a-b,c-d` from a sorted list of slots. */
function ranges(slots: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < slots.length; ) {
    let j = i;
    while (j + 1 < slots.length && slots[j + 1] === slots[j]! + 1) j++;
    out.push(i === j ? String(slots[i]) : `${slots[i]}-${slots[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** Reports the cluster's masters and their slots at each refresh of the slot map, when changed. */
export function watchCluster(cluster: Cluster, report: TopologyListener): void {
  let last = '';
  let replicas = new Set<string>();
  const check = () => {
    const bySlot = cluster.slots;
    const owned = new Map<string, number[]>();
    const nowReplicas = new Set<string>();
    for (let slot = 0; slot < bySlot.length; slot++) {
      const nodes = bySlot[slot];
      if (!nodes || nodes.length === 0) continue;
      const list = owned.get(nodes[0]!);
      if (list === undefined) owned.set(nodes[0]!, [slot]);
      else list.push(slot);
      for (const r of nodes.slice(1)) nowReplicas.add(r);
    }
    const masters = [...owned].map(([node, slots]) => `${node} slots ${ranges(slots)}`).sort();
    const signature = masters.join(';');
    const before = replicas;
    replicas = nowReplicas;
    if (signature === last || masters.length === 0) return;
    let failovers = 0;
    if (last !== '') for (const node of owned.keys()) if (before.has(node)) failovers++;
    last = signature;
    report({ mode: 'cluster', masters, failovers });
  };
  cluster.on('refresh', check);
  cluster.on('ready', check);
}
