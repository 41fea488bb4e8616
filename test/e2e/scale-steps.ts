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

/** What the steps need from the main e2e file. */
/** limits.maxConnectionsPerIp of the replicas: docker.e2e.ts sets SSE_MAX_CONNECTIONS_PER_IP to it. */
export const E2E_PER_IP_LIMIT = 20;

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

export function scaleSteps(c: ScaleContext): Step[] {
  const plain = `http://127.0.0.1:${c.plainPort}`;
  const scale = (args: string[], timeoutMs?: number) =>
    c.compose(['--profile', 'scale', ...args], timeoutMs);

  /** One metric's value on one replica (read inside its container: replicas have no host port). */
  async function metric(replica: Replica, series: string): Promise<number> {
    const script = `fetch('http://127.0.0.1:24856/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`;
    const r = await scale(['exec', '-T', replica, 'node', '-e', script], 30_000);
    c.expect(r.code === 0, `metrics of ${replica}: exit ${r.code} ${r.stderr.slice(-500)}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  }
  const channelStreams = (replica: Replica) =>
    metric(replica, 'sse_connections_active{route="/sse/channels/:channel"}');

  async function healthy(replica: Replica): Promise<void> {
    const id = (await scale(['ps', '-q', replica])).stdout.trim();
    c.expect(id !== '', `no ${replica} container`);
    await c.until(`${replica} to be healthy`, 90_000, async () => {
      const r = await c.run('docker', ['inspect', '-f', '{{.State.Health.Status}}', id], 10_000);
      return r.stdout.trim() === 'healthy' ? true : undefined;
    });
  }

  /** Publishes through nginx; retries 502/503 (a replica stopping) and returns the event's id. */
  async function publish(channel: string, data: unknown): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${plain}/channels/${channel}/events`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${c.token}` },
        body: JSON.stringify({ data }),
      });
      const body = (await res.json().catch(() => ({}))) as { ids?: string[] };
      if (res.status === 202 && body.ids?.length === 1) return body.ids[0]!;
      c.expect(
        (res.status === 502 || res.status === 503) && attempt < 50,
        `publish answered ${res.status} ${JSON.stringify(body)}`,
      );
      await sleep(100);
    }
  }

  /** Opens streams on `channel` through nginx until every replica holds at least one. */
  async function streamsOnEveryReplica(channel: string): Promise<Stream[]> {
    const streams: Stream[] = [];
    for (let i = 0; i < 12; i++) {
      const s = new Stream(`${plain}/sse/channels/${channel}`);
      streams.push(s);
      await s.opened;
      c.expect(s.status === 200, `subscribe through nginx: ${s.status}`);
      if (streams.length < 2) continue;
      const counts = await Promise.all(REPLICAS.map(channelStreams));
      if (counts.every((n) => n > 0)) return streams;
    }
    for (const s of streams) s.close();
    throw new Error('nginx did not spread 12 streams over both replicas');
  }

  return [
    [
      'scale: docker compose --profile scale up -d (redis, two replicas, nginx)',
      async () => {
        const up = await scale(
          ['up', '-d', '--build', 'redis', 'replica-1', 'replica-2', 'nginx'],
          15 * 60_000,
        );
        c.expect(up.code === 0, `compose up failed:\n${up.stderr.slice(-3000)}`);
        for (const replica of REPLICAS) await healthy(replica);
        await c.until('nginx to answer /readyz from a replica', 60_000, async () => {
          const res = await fetch(`${plain}/readyz`);
          const body = (await res.json()) as { broker?: { type: string } };
          return res.status === 200 && body.broker?.type === 'redis' ? true : undefined;
        });
      },
    ],
    [
      'scale: curl --http2 -k through nginx TLS gets an HTTP/2 text/event-stream answer',
      async () => {
        const url = `https://127.0.0.1:${c.tlsPort}/sse/test?count=3&interval_ms=0`;
        const h2 = await c.run(
          'curl',
          ['-sS', '-i', '-k', '--http2', '--max-time', '20', url],
          30_000,
        );
        c.expect(h2.code === 0, `curl --http2 failed (${h2.code}): ${h2.stderr}`);
        const head = h2.stdout.slice(0, h2.stdout.indexOf('\r\n\r\n'));
        c.expect(/^HTTP\/2 200\s*\r\n/.test(head), `status line: ${head.split('\r\n')[0]}`);
        c.expect(/^content-type: text\/event-stream/im.test(head), `headers:\n${head}`);
        c.expect(/^x-request-id: [0-9a-f]{32}/im.test(head), `no request id:\n${head}`);
        c.expect(h2.stdout.includes('\nid: 2\n'), `body:\n${h2.stdout}`);
        const h1 = await c.run(
          'curl',
          ['-sS', '-i', '-k', '--http1.1', '--max-time', '20', url],
          30_000,
        );
        c.expect(/^HTTP\/1\.1 200/.test(h1.stdout), `TLS HTTP/1.1: ${h1.stdout.slice(0, 100)}`);
        const p = await c.run(
          'curl',
          ['-sS', '-i', '--max-time', '20', url.replace(`https://127.0.0.1:${c.tlsPort}`, plain)],
          30_000,
        );
        c.expect(/^HTTP\/1\.1 200/.test(p.stdout), `plain HTTP/1.1: ${p.stdout.slice(0, 100)}`);
      },
    ],
    [
      'scale: events published through nginx reach subscribers on every replica, in order',
      async () => {
        const streams = await streamsOnEveryReplica('fanout');
        try {
          const ids: string[] = [];
          for (let n = 0; n < 20; n++) ids.push(await publish('fanout', { n }));
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
            const n = await metric(replica, 'sse_events_published_total');
            c.expect(n > 0, `${replica} accepted no publish`);
          }
        } finally {
          for (const s of streams) s.close();
        }
      },
    ],
    [
      'scale: a forged X-Forwarded-For through nginx does not get around maxConnectionsPerIp',
      async () => {
        // Every stream claims another client address; nginx replaces the header with the address
        // it sees (the host), so the replicas count all of them as one client.
        const n = REPLICAS.length * E2E_PER_IP_LIMIT + 5;
        const streams = Array.from(
          { length: n },
          (_, i) =>
            new Stream(`${plain}/sse/channels/forged`, {
              'X-Forwarded-For': `198.51.100.${i + 1}`,
            }),
        );
        try {
          await Promise.all(streams.map((s) => s.opened));
          const refused = streams.filter((s) => s.status === 429).length;
          const admitted = streams.filter((s) => s.status === 200).length;
          c.expect(
            admitted <= REPLICAS.length * E2E_PER_IP_LIMIT &&
              refused >= 5 &&
              admitted + refused === n,
            `${admitted} admitted, ${refused} refused with 429 of ${n}`,
          );
        } finally {
          for (const s of streams) s.close();
        }
        // The next step's client comes from the same address: wait until these are gone.
        await c.until('the refused and closed streams to be gone', 30_000, async () => {
          const counts = await Promise.all(REPLICAS.map(channelStreams));
          return counts.every((x) => x === 0) ? true : undefined;
        });
      },
    ],
    [
      'scale: a replica stops under npm run client -- --reconnect --json; every event once, in order; it comes back',
      async () => {
        const total = 120;
        const client: ChildProcess = spawn(
          'npm',
          [
            'run',
            '--silent',
            'client',
            '--',
            '--reconnect',
            '--json',
            '--max-events',
            String(total),
            '--timeout-ms',
            '30000',
            '--url',
            `${plain}/sse/channels/failover`,
          ],
          { cwd: c.root, env: c.env, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        client.stdout?.setEncoding('utf8').on('data', (s: string) => {
          out += s;
        });
        client.stderr?.setEncoding('utf8').on('data', (s: string) => {
          err += s;
        });
        const exited = once(client, 'exit');
        const killer = setTimeout(() => client.kill('SIGKILL'), 180_000);
        try {
          const where = await c.until('the client to be connected', 30_000, async () => {
            const counts = await Promise.all(REPLICAS.map(channelStreams));
            const i = counts.findIndex((n) => n > 0);
            // Only the client's stream is open (the previous step's have closed).
            return counts[0]! + counts[1]! === 1 ? REPLICAS[i] : undefined;
          });
          c.log(`the client reads from ${where}; stopping it after 30 events`);
          const ids: string[] = [];
          let stopping: Promise<Run> | null = null;
          for (let n = 0; n < total; n++) {
            ids.push(await publish('failover', { n }));
            if (n === 30) stopping = scale(['stop', where], 60_000);
            await sleep(50);
          }
          const stop = await stopping!;
          c.expect(stop.code === 0, `compose stop ${where}: ${stop.stderr}`);
          const [code] = await exited;
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

          const start = await scale(['start', where], 120_000);
          c.expect(start.code === 0, `compose start ${where}: ${start.stderr}`);
          await healthy(where);
          const streams: Stream[] = [];
          try {
            await c.until(`${where} to take new streams through nginx`, 60_000, async () => {
              const s = new Stream(`${plain}/sse/channels/back`);
              streams.push(s);
              await s.opened;
              return (await channelStreams(where)) > 0 ? true : undefined;
            });
          } finally {
            for (const s of streams) s.close();
          }
        } finally {
          clearTimeout(killer);
          if (client.exitCode === null) client.kill('SIGKILL');
        }
      },
    ],
    [
      'scale + observability: Prometheus scrapes every replica',
      async () => {
        const up = await c.compose(
          [
            '--profile',
            'observability',
            '--profile',
            'scale',
            'up',
            '-d',
            '--no-deps',
            'prometheus',
          ],
          5 * 60_000,
        );
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
          const r = await query(
            'sum by (replica) (sse_events_published_total{job="http-sse-replicas"})',
          );
          return r.length === REPLICAS.length ? true : undefined;
        });
        const total = await query('sum(sse_events_published_total{job="http-sse-replicas"})');
        c.expect(Number(total[0]?.value[1]) > 0, `sum over the replicas: ${JSON.stringify(total)}`);
      },
    ],
  ];
}
