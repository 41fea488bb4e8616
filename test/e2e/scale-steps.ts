// The `scale` profile's part of the Docker end-to-end test (test/e2e/docker.e2e.ts runs these steps
// after its own): Redis, two replicas on the Redis broker, nginx in front with TLS + HTTP/2.
//   - through nginx's TLS port, `curl --http2 -k` gets an HTTP/2 text/event-stream answer;
//   - events published through nginx (spread over both replicas) reach subscribers on every
//     replica, all of them, in order;
//   - a replica is stopped under `npm run client -- --reconnect --json` while publishing goes on:
//     the client gets every acknowledged event exactly once, in order; the replica comes back and
//     takes streams again;
//   - with the observability profile, Prometheus scrapes each replica.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** limits.maxConnectionsPerIp of the replicas: docker.e2e.ts sets SSE_MAX_CONNECTIONS_PER_IP to it. */
export const E2E_PER_IP_LIMIT = 20;

/** What the steps need from the main e2e file. */
export interface ScaleContext {
  root: string;
  env: NodeJS.ProcessEnv;
  tlsPort: number;
  plainPort: number;
  promPort: number;
  token: string;
  run(cmd: string, args: string[], timeoutMs: number): Promise<Run>;
  compose(args: string[], timeoutMs?: number): Promise<Run>;
  until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T>;
  expect(cond: boolean, message: string): asserts cond;
  log(line: string): void;
}

type Step = [string, () => Promise<void>];

const REPLICAS = ['replica-1', 'replica-2'] as const;
type Replica = (typeof REPLICAS)[number];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A subscriber through nginx (plain HTTP/1.1) that records event ids and data in order. */
class Stream {
  readonly ids: string[] = [];
  readonly data: string[] = [];
  status = 0;
  private readonly req: http.ClientRequest;
  readonly opened: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    let buffer = '';
    let opened!: () => void;
    let failed!: (err: Error) => void;
    this.opened = new Promise((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    this.req = http.get(url, { headers }, (res) => {
      this.status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id !== undefined && data !== undefined) {
            this.ids.push(id);
            this.data.push(data);
          }
          end = buffer.indexOf('\n\n');
        }
      });
      res.on('error', () => {});
      opened();
    });
    this.req.on('error', failed);
  }

  close(): void {
    this.req.destroy();
  }
}

/** The scale stack as the steps see it: compose, each replica's metrics and health, nginx. */
class ScaleRig {
  readonly c: ScaleContext;
  /** nginx's plain HTTP/1.1 port. */
  readonly plain: string;

  constructor(c: ScaleContext) {
    this.c = c;
    this.plain = `http://127.0.0.1:${c.plainPort}`;
  }

  compose(args: string[], timeoutMs?: number): Promise<Run> {
    return this.c.compose(['--profile', 'scale', ...args], timeoutMs);
  }

  /** One metric's value on one replica (read inside its container: replicas have no host port). */
  async metric(replica: Replica, series: string): Promise<number> {
    const script = `fetch('http://127.0.0.1:24856/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`;
    const r = await this.compose(['exec', '-T', replica, 'node', '-e', script], 30_000);
    this.c.expect(r.code === 0, `metrics of ${replica}: exit ${r.code} ${r.stderr.slice(-500)}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  }

  channelStreams(replica: Replica): Promise<number> {
    return this.metric(replica, 'sse_connections_active{route="/sse/channels/:channel"}');
  }

  /** Resolves once every replica holds no channel stream. */
  noChannelStreams(what: string): Promise<true> {
    return this.c.until(what, 30_000, async () => {
      const counts = await Promise.all(REPLICAS.map((r) => this.channelStreams(r)));
      return counts.every((x) => x === 0) ? true : undefined;
    });
  }

  async healthy(replica: Replica): Promise<void> {
    const id = (await this.compose(['ps', '-q', replica])).stdout.trim();
    this.c.expect(id !== '', `no ${replica} container`);
    await this.c.until(`${replica} to be healthy`, 90_000, async () => {
      const r = await this.c.run(
        'docker',
        ['inspect', '-f', '{{.State.Health.Status}}', id],
        10_000,
      );
      return r.stdout.trim() === 'healthy' ? true : undefined;
    });
  }

  /** Publishes through nginx; retries 502/503 (a replica stopping) and returns the event's id. */
  async publish(channel: string, data: unknown): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${this.plain}/channels/${channel}/events`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.c.token}` },
        body: JSON.stringify({ data }),
      });
      const body = (await res.json().catch(() => ({}))) as { ids?: string[] };
      if (res.status === 202 && body.ids?.length === 1) return body.ids[0]!;
      this.c.expect(
        (res.status === 502 || res.status === 503) && attempt < 50,
        `publish answered ${res.status} ${JSON.stringify(body)}`,
      );
      await sleep(100);
    }
  }

  /** Opens streams on `channel` through nginx until every replica holds at least one. */
  async streamsOnEveryReplica(channel: string): Promise<Stream[]> {
    const streams: Stream[] = [];
    for (let i = 0; i < 12; i++) {
      const s = new Stream(`${this.plain}/sse/channels/${channel}`);
      streams.push(s);
      await s.opened;
      this.c.expect(s.status === 200, `subscribe through nginx: ${s.status}`);
      if (streams.length < 2) continue;
      const counts = await Promise.all(REPLICAS.map((r) => this.channelStreams(r)));
      if (counts.every((n) => n > 0)) return streams;
    }
    for (const s of streams) s.close();
    throw new Error('nginx did not spread 12 streams over both replicas');
  }
}

async function stackUp(rig: ScaleRig): Promise<void> {
  const c: ScaleContext = rig.c;
  const up = await rig.compose(
    ['up', '-d', '--build', 'redis', 'replica-1', 'replica-2', 'nginx'],
    15 * 60_000,
  );
  c.expect(up.code === 0, `compose up failed:\n${up.stderr.slice(-3000)}`);
  for (const replica of REPLICAS) await rig.healthy(replica);
  await c.until('nginx to answer /readyz from a replica', 60_000, async () => {
    const res = await fetch(`${rig.plain}/readyz`);
    const body = (await res.json()) as { broker?: { type: string } };
    return res.status === 200 && body.broker?.type === 'redis' ? true : undefined;
  });
}

/** `curl -sS -i` with the given options; fails the step when curl does. */
async function curl(c: ScaleContext, options: string[], url: string): Promise<string> {
  const r = await c.run('curl', ['-sS', '-i', ...options, '--max-time', '20', url], 30_000);
  c.expect(r.code === 0, `curl ${options.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function tlsAndHttp2(rig: ScaleRig): Promise<void> {
  const c: ScaleContext = rig.c;
  const path = '/sse/test?count=3&interval_ms=0';
  const url = `https://127.0.0.1:${c.tlsPort}${path}`;
  const h2 = await curl(c, ['-k', '--http2'], url);
  const head = h2.slice(0, h2.indexOf('\r\n\r\n'));
  c.expect(/^HTTP\/2 200\s*\r\n/.test(head), `status line: ${head.split('\r\n')[0]}`);
  c.expect(/^content-type: text\/event-stream/im.test(head), `headers:\n${head}`);
  c.expect(/^x-request-id: [0-9a-f]{32}/im.test(head), `no request id:\n${head}`);
  c.expect(h2.includes('\nid: 2\n'), `body:\n${h2}`);
  const h1 = await curl(c, ['-k', '--http1.1'], url);
  c.expect(/^HTTP\/1\.1 200/.test(h1), `TLS HTTP/1.1: ${h1.slice(0, 100)}`);
  const p = await curl(c, [], `${rig.plain}${path}`);
  c.expect(/^HTTP\/1\.1 200/.test(p), `plain HTTP/1.1: ${p.slice(0, 100)}`);
}

async function fanOutAcrossReplicas(rig: ScaleRig): Promise<void> {
  const c: ScaleContext = rig.c;
  const streams = await rig.streamsOnEveryReplica('fanout');
  try {
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) ids.push(await rig.publish('fanout', { n }));
    await c.until('every subscriber to get the 20 events', 30_000, async () =>
      streams.every((s) => s.ids.length >= ids.length) ? true : undefined,
    );
    for (const [i, s] of streams.entries()) {
      c.expect(
        JSON.stringify(s.ids) === JSON.stringify(ids),
        `subscriber ${i} got ${s.ids.join(',')}, published ${ids.join(',')}`,
      );
    }
    // nginx spreads the publishes too: both replicas accepted some of them.
    for (const replica of REPLICAS) {
      const n = await rig.metric(replica, 'sse_events_published_total');
      c.expect(n > 0, `${replica} accepted no publish`);
    }
  } finally {
    for (const s of streams) s.close();
  }
}

async function forgedForwardedFor(rig: ScaleRig): Promise<void> {
  const c: ScaleContext = rig.c;
  // Every stream claims another client address; nginx replaces the header with the address
  // it sees (the host), so the replicas count all of them as one client.
  const n = REPLICAS.length * E2E_PER_IP_LIMIT + 5;
  const streams = Array.from(
    { length: n },
    (_, i) =>
      new Stream(`${rig.plain}/sse/channels/forged`, {
        'X-Forwarded-For': `198.51.100.${i + 1}`,
      }),
  );
  try {
    await Promise.all(streams.map((s) => s.opened));
    const refused = streams.filter((s) => s.status === 429).length;
    const admitted = streams.filter((s) => s.status === 200).length;
    c.expect(
      admitted <= REPLICAS.length * E2E_PER_IP_LIMIT && refused >= 5 && admitted + refused === n,
      `${admitted} admitted, ${refused} refused with 429 of ${n}`,
    );
  } finally {
    for (const s of streams) s.close();
  }
  // The next step's client comes from the same address: wait until these are gone.
  await rig.noChannelStreams('the refused and closed streams to be gone');
}

/** `npm run client -- --reconnect --json` on `url`, its output kept; killed after 180 s at most. */
function reconnectingClient(c: ScaleContext, url: string, maxEvents: number) {
  const args = ['run', '--silent', 'client', '--', '--reconnect', '--json'];
  args.push('--max-events', String(maxEvents), '--timeout-ms', '30000', '--url', url);
  const child: ChildProcess = spawn('npm', args, {
    cwd: c.root,
    env: c.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { out: '', err: '' };
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    output.out += s;
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    output.err += s;
  });
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const killer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const dispose = () => {
    clearTimeout(killer);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  return { output, exited, dispose };
}

/** The replica the client's stream landed on (only the client's stream is open by then). */
function replicaOfTheClient(rig: ScaleRig): Promise<Replica> {
  return rig.c.until('the client to be connected', 30_000, async () => {
    const counts = await Promise.all(REPLICAS.map((r) => rig.channelStreams(r)));
    const i = counts.findIndex((n) => n > 0);
    return counts[0]! + counts[1]! === 1 ? REPLICAS[i] : undefined;
  });
}

async function failover(rig: ScaleRig): Promise<void> {
  const c: ScaleContext = rig.c;
  const total = 120;
  const client = reconnectingClient(c, `${rig.plain}/sse/channels/failover`, total);
  try {
    const where = await replicaOfTheClient(rig);
    c.log(`the client reads from ${where}; stopping it after 30 events`);
    const ids: string[] = [];
    let stopping: Promise<Run> | null = null;
    for (let n = 0; n < total; n++) {
      ids.push(await rig.publish('failover', { n }));
      if (n === 30) stopping = rig.compose(['stop', where], 60_000);
      await sleep(50);
    }
    const stop = await stopping!;
    c.expect(stop.code === 0, `compose stop ${where}: ${stop.stderr}`);
    const [code] = await client.exited;
    const { out, err } = client.output;
    c.expect(code === 0, `client exited ${code}: ${err.slice(-2000)}`);
    c.expect(/reconnecting to /.test(err), `the client never reconnected:\n${err}`);
    const got = out
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: string }).id);
    c.expect(
      JSON.stringify(got) === JSON.stringify(ids),
      `client got ${got.length} events (${got.join(',')}), published ${ids.length} (${ids.join(',')})`,
    );
    await comesBack(rig, where);
  } finally {
    client.dispose();
  }
}

/** Starts a stopped replica again and waits until nginx hands it new streams. */
async function comesBack(rig: ScaleRig, where: Replica): Promise<void> {
  const start = await rig.compose(['start', where], 120_000);
  rig.c.expect(start.code === 0, `compose start ${where}: ${start.stderr}`);
  await rig.healthy(where);
  const streams: Stream[] = [];
  try {
    await rig.c.until(`${where} to take new streams through nginx`, 60_000, async () => {
      const s = new Stream(`${rig.plain}/sse/channels/back`);
      streams.push(s);
      await s.opened;
      return (await rig.channelStreams(where)) > 0 ? true : undefined;
    });
  } finally {
    for (const s of streams) s.close();
  }
}

async function prometheusScrapesReplicas(rig: ScaleRig): Promise<void> {
  const c: ScaleContext = rig.c;
  const profiles = ['--profile', 'observability', '--profile', 'scale'];
  const up = await c.compose([...profiles, 'up', '-d', '--no-deps', 'prometheus'], 5 * 60_000);
  c.expect(up.code === 0, `prometheus failed to start:\n${up.stderr.slice(-2000)}`);
  const query = async (q: string) => {
    const res = await fetch(
      `http://127.0.0.1:${c.promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
    );
    return (
      (await res.json()) as {
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      }
    ).data.result;
  };
  await c.until('Prometheus to report both replicas up', 120_000, async () => {
    const r = await query('up{job="http-sse-replicas"} == 1');
    return r.length === REPLICAS.length ? true : undefined;
  });
  // The replicas' series stay apart (label replica) and add up with sum.
  await c.until('sse_events_published_total from both replicas', 60_000, async () => {
    const r = await query('sum by (replica) (sse_events_published_total{job="http-sse-replicas"})');
    return r.length === REPLICAS.length ? true : undefined;
  });
  const total = await query('sum(sse_events_published_total{job="http-sse-replicas"})');
  c.expect(Number(total[0]?.value[1]) > 0, `sum over the replicas: ${JSON.stringify(total)}`);
}

export function scaleSteps(c: ScaleContext): Step[] {
  const rig = new ScaleRig(c);
  const steps: [string, (rig: ScaleRig) => Promise<void>][] = [
    ['scale: docker compose --profile scale up -d (redis, two replicas, nginx)', stackUp],
    [
      'scale: curl --http2 -k through nginx TLS gets an HTTP/2 text/event-stream answer',
      tlsAndHttp2,
    ],
    [
      'scale: events published through nginx reach subscribers on every replica, in order',
      fanOutAcrossReplicas,
    ],
    [
      'scale: a forged X-Forwarded-For through nginx does not get around maxConnectionsPerIp',
      forgedForwardedFor,
    ],
    [
      'scale: a replica stops under npm run client -- --reconnect --json; every event once, in order; it comes back',
      failover,
    ],
    ['scale + observability: Prometheus scrapes every replica', prometheusScrapesReplicas],
  ];
  return steps.map(([title, step]) => [title, () => step(rig)]);
}
