// What the server alone gives at a fan-out point, with receivers that cost next to nothing: N raw
// sockets on a fresh channel in two child processes that, per socket read, look only for the
// first `"ts":` in it (the oldest event the read brings) and record now - ts; meanwhile events are
// published at `rate`/s (their data carries ts and seq). No check of order, loss or framing (the
// fanout scenario does that): a bound under what any checking receiver on the same cores sees.
//   SSE_PUBLISH_TOKEN=t node loadtest/free-receiver-probe.ts <base-url> [subscribers 10000] [rate 50] [duration-s 10] [warmup-s 2]
import { fork } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { eventStreamRequest, rawTarget } from './src/raw/request.ts';

const now = () => performance.timeOrigin + performance.now();
const OPEN_TIMEOUT_MS = 60_000;

interface Report {
  latencies: number[];
  cpuSeconds: number;
}

async function receiver(stream: URL, count: number) {
  const latencies: number[] = [];
  let opened = 0;
  let measuring = false;
  const { host, port } = rawTarget(stream);
  const request = eventStreamRequest(stream);
  for (let i = 0; i < count; i++) {
    if (i % 250 === 0) await new Promise((r) => setImmediate(r));
    const s = net.connect({ port, host, noDelay: true });
    s.write(request);
    let head = false;
    s.on('data', (d: Buffer) => {
      const at = now();
      if (!head) {
        head = true;
        if (++opened === count) process.send?.('opened');
      }
      if (!measuring) return;
      const i = d.indexOf('"ts":');
      if (i < 0) return;
      const end = d.indexOf(',', i + 5);
      const ts = Number(d.toString('latin1', i + 5, end));
      if (Number.isFinite(ts)) latencies.push(at - ts);
    });
    s.on('error', () => {});
  }
  process.on('message', (m: string) => {
    if (m === 'measure') measuring = true;
    if (m === 'report') {
      const c = process.cpuUsage();
      process.send?.({ latencies, cpuSeconds: (c.user + c.system) / 1e6 } satisfies Report);
    }
  });
}

function publisher(base: URL, channel: string, token: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let seq = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let failed = 0;
  const publish = () => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const data = `{"ts":${now()},"seq":${seq++},"pad":"${'x'.repeat(60)}"}`;
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: 'POST',
        path: `/channels/${channel}/events`,
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      },
      (res) => {
        if ((res.statusCode ?? 0) >= 300) failed++;
        res.resume();
        res.on('end', () => inFlight--);
      },
    );
    req.on('error', () => {
      failed++;
      inFlight--;
    });
    req.end(JSON.stringify({ data }));
  };
  return {
    publish,
    stats: () => ({ sent: seq, maxInFlight, failed }),
    close: () => agent.destroy(),
  };
}

if (process.argv[2] === '--receiver') {
  const [stream, count] = process.argv.slice(3) as [string, string];
  await receiver(new URL(stream), Number(count));
} else {
  const [url, ...rest] = process.argv.slice(2);
  const [subscribers = 10_000, rate = 50, duration = 10, warmup = 2] = rest.map(Number);
  const base = url === undefined ? null : URL.parse(url);
  const counts = [subscribers, rate, duration, warmup];
  if (
    base === null ||
    base.protocol !== 'http:' ||
    !counts.every((n) => Number.isInteger(n) && n > 0)
  ) {
    process.stderr.write(
      'usage: SSE_PUBLISH_TOKEN=... node loadtest/free-receiver-probe.ts <http://host:port> [subscribers] [rate] [duration-s] [warmup-s]\n',
    );
    process.exit(2);
  }
  const channel = `probe-${Date.now().toString(36)}`;
  const stream = new URL(`/sse/channels/${channel}`, base).href;
  const half = Math.ceil(subscribers / 2);
  const kids = [half, subscribers - half].map((n) =>
    fork(import.meta.filename, ['--receiver', stream, String(n)]),
  );
  const opened = await Promise.race([
    Promise.all(kids.map((k) => new Promise((r) => k.once('message', r)))).then(() => true),
    new Promise<boolean>((r) => setTimeout(r, OPEN_TIMEOUT_MS, false)).then(() => false),
  ]);
  if (!opened) {
    process.stderr.write(
      `free-receiver-probe: ${subscribers} streams not all open within ${OPEN_TIMEOUT_MS / 1000} s at ${base.origin}\n`,
    );
    for (const k of kids) k.kill();
    process.exit(1);
  }
  const pub = publisher(base, channel, process.env.SSE_PUBLISH_TOKEN ?? '');
  const started = performance.now();
  let sent = 0;
  let measuring = false;
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      for (const due = Math.floor(elapsed * rate); sent < due; sent++) pub.publish();
      if (!measuring && elapsed > warmup) {
        measuring = true;
        for (const k of kids) k.send('measure');
      }
      if (elapsed > warmup + duration) {
        clearInterval(tick);
        done();
      }
    }, 2);
  });
  await new Promise((r) => setTimeout(r, 1500));
  const reports = await Promise.all(
    kids.map(
      (k) =>
        new Promise<Report>((r) => {
          k.once('message', (m) => r(m as Report));
          k.send('report');
        }),
    ),
  );
  const all = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const q = (p: number) =>
    (all[Math.min(all.length - 1, Math.floor(p * all.length))] ?? NaN).toFixed(1);
  const s = pub.stats();
  process.stdout.write(
    `${subscribers} subscribers x ${rate}/s for ${duration} s: ${all.length} reads, latency of each read's oldest event ` +
      `p50 ${q(0.5)} p99 ${q(0.99)} max ${q(1)} ms; published ${s.sent} (${s.failed} failed, at most ${s.maxInFlight} in flight); ` +
      `receivers' CPU ${reports.map((r) => r.cpuSeconds.toFixed(1)).join(' + ')} s\n`,
  );
  for (const k of kids) k.kill();
  pub.close();
  process.exit(s.failed > 0 || all.length === 0 ? 1 : 0);
}
