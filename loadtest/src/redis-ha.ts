// Real Redis high availability for the tests (test/helpers/redis-ha.ts) and the fan-out bench's
// `--broker sentinel|cluster|ha`, from Debian's redis-server and redis-sentinel on random ports,
// every config and data file in one temporary directory, every process stopped by its PID (SIGKILL)
// and the directory removed by stop():
//   startSentinelSet()  one master, one replica, three sentinels (quorum 2) watching "mymaster",
//                       down-after 1000 ms and failover-timeout 2000 ms, so that a killed master is
//                       replaced within a few seconds
//   startRedisCluster() N masters (+ a replica each) made by `redis-cli --cluster create`, with
//                       cluster-node-timeout 1000, cluster-require-full-coverage no (a dead shard
//                       stops only its own slots) and replicas that always try to take over
// No persistence: replication is what these tests are about, and a killed node comes back empty
// as a replica and takes a full copy (diskless, no delay).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { eventually } from '../../services/shared/eventually.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { answersPing } from './redis-server.ts';

/** Runs one command on a fresh connection to 127.0.0.1:`port` (fails fast: no retry). */
export async function redisCall(port: number, command: string, ...args: (string | number)[]) {
  const conn = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    commandTimeout: 5000,
    retryStrategy: () => null,
  });
  conn.on('error', () => {});
  try {
    await conn.connect();
    return await conn.call(command, args);
  } finally {
    conn.disconnect();
  }
}

/** The replies of INFO <section> as a map. */
async function info(port: number, section: string): Promise<Map<string, string>> {
  const text = String(await redisCall(port, 'INFO', section));
  const out = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

/** A data node: one redis-server process, started again on the same port by `start`. */
class Node {
  readonly port: number;
  private readonly dir: string;
  private readonly base: string[];
  private child: ChildProcess | null = null;
  private paused = false;

  constructor(port: number, root: string, extra: string[]) {
    this.port = port;
    this.dir = join(root, `node-${port}`);
    mkdirSync(this.dir, { recursive: true });
    this.base = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--repl-diskless-sync',
      'yes',
      '--repl-diskless-sync-delay',
      '0',
      ...extra,
    ];
  }

  get running(): boolean {
    const c = this.child;
    return c !== null && c.exitCode === null && c.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(extra: string[] = []): Promise<void> {
    if (this.running) return;
    this.child = spawn('redis-server', [...this.base, ...extra], { stdio: 'ignore' });
    this.paused = false;
    await eventually(() => answersPing(this.port), 10_000, `redis-server on ${this.port}`, 50);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.child;
    if (c === null || !this.running) return;
    const exited = once(c, 'exit');
    if (this.paused && signal !== 'SIGKILL') c.kill('SIGCONT');
    this.paused = false;
    c.kill(signal);
    await exited;
    this.child = null;
  }

  pause(): void {
    if (!this.running || this.paused) return;
    this.child!.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.running || !this.paused) return;
    this.paused = false;
    this.child!.kill('SIGCONT');
  }
}

export interface SentinelSet {
  readonly name: string;
  /** `host:port` of each sentinel. */
  readonly sentinels: readonly string[];
  /** Ports of the data nodes (first the initial master, then the replica). */
  readonly dataPorts: readonly number[];
  /** The environment that puts a server on this set (plus a key prefix of your own). */
  env(extra?: Record<string, string>): Record<string, string>;
  /** The master the sentinels name now. */
  masterPort(): Promise<number>;
  /** Waits until every sentinel names a master other than `old`; returns it. */
  waitForNewMaster(old: number, timeoutMs?: number): Promise<number>;
  /** kill -9 (or another signal) of a data node. */
  kill(port: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a killed data node again as a replica of the current master, and waits until in sync. */
  rejoin(port: number): Promise<void>;
  /** Waits until the node replicates the current master with its link up, caught up with it. */
  waitInSync(port: number, timeoutMs?: number): Promise<void>;
  /** SIGSTOP / SIGCONT of a data node. */
  pause(port: number): void;
  resume(port: number): void;
  /**
   * SENTINEL FAILOVER: the replica is promoted at once; the old master is made its replica right
   * after (the sentinels would do so at their next look, up to 10 s later).
   */
  failover(): Promise<number>;
  stop(): Promise<void>;
}

const NAME = 'mymaster';

export async function startSentinelSet(): Promise<SentinelSet> {
  const root = mkdtempSync(join(tmpdir(), 'http-sse-sentinel-'));
  const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  const nodes = new Map<number, Node>();
  const sentinelProcs: ChildProcess[] = [];
  const stop = async () => {
    for (const n of nodes.values()) await n.kill('SIGKILL');
    for (const s of sentinelProcs) {
      if (s.exitCode === null && s.signalCode === null) {
        const exited = once(s, 'exit');
        s.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const master = new Node(masterPort!, root, []);
    const replica = new Node(replicaPort!, root, []);
    nodes.set(masterPort!, master);
    nodes.set(replicaPort!, replica);
    await master.start();
    await replica.start(['--replicaof', '127.0.0.1', String(masterPort)]);
    for (const port of sentinelPorts) {
      const file = join(root, `sentinel-${port}.conf`);
      writeFileSync(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${root}`,
          `sentinel monitor ${NAME} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${NAME} 1000`,
          `sentinel failover-timeout ${NAME} 2000`,
          `sentinel parallel-syncs ${NAME} 1`,
          '',
        ].join('\n'),
      );
      sentinelProcs.push(spawn('redis-sentinel', [file], { stdio: 'ignore' }));
    }
    const set = sentinelSet(masterPort!, replicaPort!, sentinelPorts, nodes, stop);
    await set.waitInSync(replicaPort!);
    // Every sentinel knows the replica and the two other sentinels (hello messages, every 2 s).
    await eventually(
      async () => {
        for (const port of sentinelPorts) {
          const replicas = (await redisCall(port, 'SENTINEL', 'REPLICAS', NAME)) as unknown[];
          const peers = (await redisCall(port, 'SENTINEL', 'SENTINELS', NAME)) as unknown[];
          if (replicas.length < 1 || peers.length < 2) return false;
        }
        return true;
      },
      20_000,
      'three sentinels that know each other and the replica',
      100,
    );
    return set;
  } catch (err) {
    await stop();
    throw err;
  }
}

function sentinelSet(
  masterPort: number,
  replicaPort: number,
  sentinelPorts: number[],
  nodes: Map<number, Node>,
  stop: () => Promise<void>,
): SentinelSet {
  const named = async (port: number): Promise<number | null> => {
    try {
      const addr = (await redisCall(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as
        | string[]
        | null;
      return addr === null ? null : Number(addr[1]);
    } catch {
      return null;
    }
  };
  const set: SentinelSet = {
    name: NAME,
    sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`),
    dataPorts: [masterPort, replicaPort],
    env(extra = {}) {
      return {
        SSE_BROKER: 'redis',
        REDIS_SENTINELS: set.sentinels.join(','),
        REDIS_SENTINEL_NAME: NAME,
        ...extra,
      };
    },
    async masterPort() {
      for (const port of sentinelPorts) {
        const m = await named(port);
        if (m !== null) return m;
      }
      throw new Error('no sentinel names a master');
    },
    async waitForNewMaster(old, timeoutMs = 30_000) {
      let now = old;
      await eventually(
        async () => {
          const all = await Promise.all(sentinelPorts.map(named));
          if (all.some((p) => p === null || p === old) || new Set(all).size !== 1) return false;
          now = all[0]!;
          // The promoted replica answers as a master.
          return (await info(now, 'replication')).get('role') === 'master';
        },
        timeoutMs,
        `a master other than ${old}`,
        100,
      );
      return now;
    },
    async kill(port, signal = 'SIGKILL') {
      await nodes.get(port)?.kill(signal);
    },
    async rejoin(port) {
      const master = await set.masterPort();
      await nodes.get(port)!.start(['--replicaof', '127.0.0.1', String(master)]);
      await set.waitInSync(port);
    },
    async waitInSync(port, timeoutMs = 20_000) {
      await eventually(
        async () => {
          const master = await set.masterPort().catch(() => null);
          if (master === null || master === port) return false;
          // Caught up with what the master had written when asked (it may write on meanwhile).
          const m = await info(master, 'replication').catch(() => null);
          const r = await info(port, 'replication').catch(() => null);
          if (r?.get('role') !== 'slave' || r.get('master_link_status') !== 'up') return false;
          if (r.get('master_port') !== String(master)) return false;
          return Number(r.get('slave_repl_offset')) >= Number(m?.get('master_repl_offset'));
        },
        timeoutMs,
        `replica ${port} in sync`,
        50,
      );
    },
    pause(port) {
      nodes.get(port)?.pause();
    },
    resume(port) {
      nodes.get(port)?.resume();
    },
    async failover() {
      const old = await set.masterPort();
      // The sentinel asked must see a healthy replica first (it learns of a rejoined node from
      // the master's INFO, every few seconds); a failover under way answers INPROG.
      await eventually(
        async () => {
          try {
            await redisCall(sentinelPorts[0]!, 'SENTINEL', 'FAILOVER', NAME);
            return true;
          } catch (err) {
            if (/NOGOODSLAVE|INPROG/.test((err as Error).message)) return false;
            throw err;
          }
        },
        30_000,
        'SENTINEL FAILOVER to be accepted',
        200,
      );
      const promoted = await set.waitForNewMaster(old);
      // What the sentinels would do at their next look at the old master (up to 10 s later):
      // make it a replica of the new one and drop its clients.
      await redisCall(old, 'REPLICAOF', '127.0.0.1', promoted);
      await redisCall(old, 'CLIENT', 'KILL', 'TYPE', 'normal').catch(() => {});
      return promoted;
    },
    stop,
  };
  return set;
}

export interface RedisCluster {
  /** `host:port` of every node (seeds for REDIS_CLUSTER_NODES). */
  readonly seeds: readonly string[];
  readonly ports: readonly number[];
  env(extra?: Record<string, string>): Record<string, string>;
  /** The master port serving a slot now (asked of a live node). */
  ownerOf(slot: number): Promise<number>;
  /** Ports of the nodes that are masters with slots now. */
  masters(): Promise<number[]>;
  /** kill -9 of a node. */
  kill(port: number): Promise<void>;
  /** Waits until the cluster serves `slot` from a master other than `old`; returns it. */
  waitForNewOwner(slot: number, old: number, timeoutMs?: number): Promise<number>;
  /**
   * Moves a slot to another master as `redis-cli --cluster reshard` does: IMPORTING/MIGRATING,
   * MIGRATE of its keys in batches of `batch` (ASK meanwhile), then SETSLOT NODE everywhere
   * (MOVED after). `between` runs after the first batch moved, while the slot is split.
   */
  migrateSlot(
    slot: number,
    to: number,
    batch?: number,
    between?: () => Promise<void>,
  ): Promise<void>;
  stop(): Promise<void>;
}

interface SlotRange {
  from: number;
  to: number;
  master: number;
}

async function clusterSlots(port: number): Promise<SlotRange[]> {
  const reply = (await redisCall(port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  return reply.map(([from, to, master]) => ({ from, to, master: Number(master[1]) }));
}

export async function startRedisCluster(
  options: { masters?: number; replicas?: 0 | 1 } = {},
): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  const root = mkdtempSync(join(tmpdir(), 'http-sse-cluster-'));
  const ports = await Promise.all(
    Array.from({ length: masters * (1 + replicas) }, () => freePort()),
  );
  const nodes = new Map<number, Node>();
  const stop = async () => {
    for (const n of nodes.values()) await n.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const node = new Node(port, root, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(root, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '1000',
        '--cluster-require-full-coverage',
        'no',
        '--cluster-replica-validity-factor',
        '0',
      ]);
      nodes.set(port, node);
    }
    await Promise.all([...nodes.values()].map((n) => n.start()));
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (create.status !== 0) {
      throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    }
    // Every node agrees: cluster_state ok and the same masters; every replica in sync.
    await eventually(
      async () => {
        const views = await Promise.all(
          ports.map(async (p) => {
            const ok = String(await redisCall(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok');
            const slots = await clusterSlots(p);
            return ok ? JSON.stringify(slots.sort((a, b) => a.from - b.from)) : null;
          }),
        );
        if (views.some((v) => v === null) || new Set(views).size !== 1) return false;
        for (const p of ports) {
          const r = await info(p, 'replication');
          if (r.get('role') === 'slave' && r.get('master_link_status') !== 'up') return false;
        }
        return true;
      },
      30_000,
      'the cluster to agree and its replicas to sync',
      100,
    );
    return cluster(ports, nodes, stop);
  } catch (err) {
    await stop();
    throw err;
  }
}

function cluster(
  ports: number[],
  nodes: Map<number, Node>,
  stop: () => Promise<void>,
): RedisCluster {
  const alive = () => ports.filter((p) => nodes.get(p)!.running);
  const slotsFrom = async (): Promise<SlotRange[]> => {
    for (const p of alive()) {
      try {
        return await clusterSlots(p);
      } catch {}
    }
    throw new Error('no cluster node answers');
  };
  const nodeId = async (port: number) => String(await redisCall(port, 'CLUSTER', 'MYID'));
  const c: RedisCluster = {
    seeds: ports.map((p) => `127.0.0.1:${p}`),
    ports,
    env(extra = {}) {
      return { SSE_BROKER: 'redis', REDIS_CLUSTER_NODES: c.seeds.join(','), ...extra };
    },
    async ownerOf(slot) {
      const range = (await slotsFrom()).find((r) => r.from <= slot && slot <= r.to);
      if (range === undefined) throw new Error(`slot ${slot} is not served`);
      return range.master;
    },
    async masters() {
      return [...new Set((await slotsFrom()).map((r) => r.master))].sort((a, b) => a - b);
    },
    async kill(port) {
      await nodes.get(port)?.kill('SIGKILL');
    },
    async waitForNewOwner(slot, old, timeoutMs = 30_000) {
      let owner = old;
      await eventually(
        async () => {
          // Every live node names the same new owner, and it answers as a master.
          const views = await Promise.all(
            alive().map(async (p) => {
              const r = (await clusterSlots(p).catch(() => [])).find(
                (x) => x.from <= slot && slot <= x.to,
              );
              return r?.master ?? -1;
            }),
          );
          if (views.some((v) => v === old || v === -1) || new Set(views).size !== 1) return false;
          owner = views[0]!;
          return (await info(owner, 'replication')).get('role') === 'master';
        },
        timeoutMs,
        `slot ${slot} served by a master other than ${old}`,
        100,
      );
      return owner;
    },
    async migrateSlot(slot, to, batch = 10, between) {
      const from = await c.ownerOf(slot);
      if (from === to) return;
      const [fromId, toId] = await Promise.all([nodeId(from), nodeId(to)]);
      await redisCall(to, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
      await redisCall(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
      let moved = 0;
      for (let round = 0; round < 10_000; round++) {
        const keys = (await redisCall(from, 'CLUSTER', 'GETKEYSINSLOT', slot, batch)) as string[];
        if (keys.length === 0) break;
        await redisCall(from, 'MIGRATE', '127.0.0.1', to, '', 0, 5000, 'KEYS', ...keys);
        moved += keys.length;
        if (round === 0) await between?.();
      }
      if (moved === 0) await between?.();
      for (const p of [to, from, ...alive().filter((x) => x !== to && x !== from)]) {
        await redisCall(p, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId).catch(() => {});
      }
    },
    stop,
  };
  return c;
}
