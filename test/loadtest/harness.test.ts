// The load-test harness on tiny runs: reports written and parseable, broken streams counted as
// errors, lost events detected, --compare output, usage and unreachable-target exits.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { compareReports } from '../../loadtest/src/report/compare.ts';
import type { Report } from '../../loadtest/src/report/report.ts';
import { completeStream } from '../../loadtest/src/scenarios/stream.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { runNode } from '../helpers/process.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const harness = (args: string[], env: Record<string, string> = {}) =>
  runNode(['loadtest/src/main.ts', '--no-progress', ...args], env, 60_000);

function reportFiles(dir: string): { json: Report; md: string; svg: string } {
  const files = readdirSync(dir);
  const name = files.find((f) => f.endsWith('.json'))!;
  const stem = name.slice(0, -'.json'.length);
  return {
    json: JSON.parse(readFileSync(join(dir, name), 'utf8')) as Report,
    md: readFileSync(join(dir, `${stem}.md`), 'utf8'),
    svg: readFileSync(join(dir, `${stem}.svg`), 'utf8'),
  };
}

/** A server whose /sse/test stream stops after five events (clean end) or is cut (abort). */
function brokenStreamServer(mode: 'short' | 'cut'): http.Server {
  return http.createServer((req, res) => {
    if (req.url === '/healthz') return void res.end('{}');
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Transfer-Encoding': 'chunked' });
    let body = '';
    for (let n = 0; n < 5; n++)
      body += `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
    if (mode === 'short') res.end(body);
    else {
      res.write(body);
      res.socket?.destroy();
    }
  });
}

/**
 * A fan-out peer with opaque string ids. `drop`: skips delivering the third event to every
 * subscriber. `swap`: holds each odd event back and delivers it after the next one (out of order,
 * nothing lost). `slowMs`: answers publishes that late.
 */
interface Hub {
  subs: Set<http.ServerResponse>;
  /** Subscribe and publish requests each server instance answered. */
  served: Map<http.Server, { subscribes: number; publishes: number }>;
}
const newHub = (): Hub => ({ subs: new Set(), served: new Map() });

function fanoutPeer(mode: 'drop' | 'swap' | 'ok', slowMs = 0, hub: Hub = newHub()): http.Server {
  const subs = hub.subs;
  let id = 0;
  let held: string | null = null;
  const served = { subscribes: 0, publishes: 0 };
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz' || req.url === '/metrics') return void res.end('');
    if (req.method === 'GET') {
      served.subscribes++;
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('retry: 1000\n\n');
      subs.add(res);
      res.on('close', () => subs.delete(res));
      return;
    }
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      served.publishes++;
      const { data } = JSON.parse(body) as { data: unknown };
      id++;
      const frame = `data: ${JSON.stringify(data)}\nid: ev-${id.toString(36)}-x\n\n`;
      let out = '';
      if (mode === 'drop') out = id === 3 ? '' : frame;
      else if (mode === 'swap' && held === null && id % 2 === 1) held = frame;
      else {
        out = frame + (held ?? '');
        held = null;
      }
      for (const s of subs) if (out) s.write(out);
      setTimeout(() => {
        res.writeHead(202, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ids: [`ev-${id}`], subscribers: subs.size }));
      }, slowMs);
    });
  });
  hub.served.set(server, served);
  return server;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** Serves each server on a random port while `body` runs, then closes it, connections and all. */
async function withServers(
  servers: http.Server[],
  body: (bases: string[]) => Promise<void>,
): Promise<void> {
  const bases = await Promise.all(servers.map(listen));
  try {
    await body(bases);
  } finally {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  }
}

/** The report a --json run printed last on stdout. */
const jsonReport = (r: { stdout: string }) =>
  JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Report;

/** A one-second stream run against `base`, reports in `dir`. */
const shortStream = (base: string, dir: string, flags: string[]) =>
  harness(['--scenario', 'stream', '--url', base, '--duration', '1', '--out', dir, ...flags]);

/** A one-second fanout run without warm-up against every base, reports in `dir`, --json. */
const shortFanout = (
  bases: string[],
  dir: string,
  flags: string[],
  env: Record<string, string> = {},
) =>
  harness(
    [
      '--scenario',
      'fanout',
      ...bases.flatMap((b) => ['--url', b]),
      ...flags,
      '--duration',
      '1',
      '--warmup',
      '0',
      '--out',
      dir,
      '--json',
    ],
    env,
  );

describe('load-test harness', () => {
  let t: TestServer;
  let out: string;
  before(async () => {
    t = await startServer({ publish: { token: 'lt' } });
    out = mkdtempSync(join(tmpdir(), 'http-sse-loadtest-'));
  });
  after(async () => {
    await t.close();
    rmSync(out, { recursive: true, force: true });
  });

  test('stream: a tiny run writes JSON, Markdown and SVG reports with the figures', async () => {
    const dir = join(out, 'stream');
    const r = await shortStream(t.base, dir, ['--connections', '2']);
    assert.equal(r.code, 0, r.stderr);
    const { json, md, svg } = reportFiles(dir);
    assert.equal(json.scenario, 'stream');
    assert.ok(Number(json.figures.streams_completed) > 0);
    assert.equal(json.figures.errors, 0);
    assert.equal(json.environment.node, process.version);
    assert.ok(json.environment.cpus >= 1);
    assert.match(md, /\| streams_per_s \|/);
    assert.match(svg, /^<svg[\s>]/);
    assert.match(r.stdout, /streams_per_s/);
  });

  test('stream: responses missing events, or cut, count as errors', async () => {
    for (const mode of ['short', 'cut'] as const) {
      await withServers([brokenStreamServer(mode)], async ([base]) => {
        const r = await shortStream(base!, join(out, `broken-${mode}`), [
          '--connections',
          '2',
          '--json',
        ]);
        const report = jsonReport(r);
        assert.ok(Number(report.figures.errors) > 0, `${mode}: ${JSON.stringify(report.figures)}`);
        assert.equal(report.figures.streams_completed, 0, mode);
        assert.match(r.stderr, /stream\(s\) failed/);
      });
    }
    assert.equal(
      completeStream('event: message\ndata: {"msg": "hello", "idx": 0}\nid: 0\n\n'),
      false,
    );
  });

  test('fanout: every event reaches every subscriber exactly once, with latency figures', async () => {
    const dir = join(out, 'fanout');
    const r = await harness(
      [
        '--scenario',
        'fanout',
        '--url',
        t.base,
        '--subscribers',
        '5',
        '--rate',
        '20',
        '--duration',
        '1',
        '--workers',
        '2',
        '--out',
        dir,
        '--json',
      ],
      { SSE_PUBLISH_TOKEN: 'lt' },
    );
    // On a busy machine the harness may lag (exit 3, harness-limited); the figures still count.
    assert.ok(r.code === 0 || r.code === 3, r.stderr);
    const f = jsonReport(r).figures;
    assert.equal(f.subscribers_open, 5);
    assert.ok(Number(f.published) > 0);
    assert.equal(f.deliveries, Number(f.published) * 5);
    assert.equal(f.lost, 0);
    assert.equal(f.duplicated, 0);
    assert.ok(Number(f.delivery_p99_ms) > 0);
    assert.equal(f.publish_offered_per_s, 20);
    assert.ok(Number(f.publish_latency_p99_ms) > 0);
    assert.ok(f.harness_worker0_event_loop_p99_ms !== undefined);
    assert.ok(f.harness_worker1_cpu_pct !== undefined, 'two workers with --workers 2');
    assert.equal(f.harness_limited, r.code === 3 ? 1 : 0);
    assert.ok(f.server_fanout_p99_ms !== null);
  });

  test('fanout: a server that drops an event is caught, loudly, with exit 1', async () => {
    await withServers([fanoutPeer('drop')], async (bases) => {
      const r = await shortFanout(bases, join(out, 'drop'), ['--subscribers', '3', '--rate', '10']);
      assert.equal(r.code, 1);
      assert.equal(jsonReport(r).figures.lost, 3, 'one event missing at each of three subscribers');
      assert.match(r.stderr, /EVENTS LOST: 3/);
    });
  });

  test('connections: ramps idle subscribers and reports memory per connection', async () => {
    const dir = join(out, 'connections');
    const r = await harness([
      '--scenario',
      'connections',
      '--url',
      t.base,
      '--subscribers',
      '20',
      '--out',
      dir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const report = jsonReport(r);
    assert.equal(report.figures.opened, 20);
    assert.equal(report.figures.failed, 0);
    assert.ok(report.figures.server_rss_per_connection_kb !== null);
  });

  test('--compare prints both runs side by side with percentages', async () => {
    const dir = join(out, 'stream');
    const old = join(dir, readdirSync(dir).find((f) => f.endsWith('.json'))!);
    const r = await shortStream(t.base, join(out, 'cmp'), ['--connections', '1', '--compare', old]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /compare stream: /);
    assert.match(
      r.stdout,
      /\| streams_per_s +\| +[\d.]+\/s \| +[\d.]+\/s \| +[+-][\d.]+% \| +no spread \|/,
    );
    assert.ok(readdirSync(join(out, 'cmp')).some((f) => f.endsWith('-compare.svg')));
    const base = JSON.parse(readFileSync(old, 'utf8')) as Report;
    const text = compareReports(
      { ...base, figures: { a_per_s: 100, b: 0 } },
      { ...base, figures: { a_per_s: 150, b: 0 } },
    );
    assert.match(text, /\| a_per_s \| +100\.0\/s \| +150\.0\/s \| +\+50\.0% \| +no spread \|/);
    const spread = (lo: number, hi: number) => ({
      rounds: 3,
      spread: { a_per_s: [lo, hi] as [number, number] },
    });
    const outside = compareReports(
      { ...base, figures: { a_per_s: 100 }, ...spread(95, 105) },
      { ...base, figures: { a_per_s: 150 }, ...spread(140, 160) },
    );
    assert.match(outside, /OUTSIDE spread/);
    const within = compareReports(
      { ...base, figures: { a_per_s: 100 }, ...spread(80, 130) },
      { ...base, figures: { a_per_s: 120 }, ...spread(90, 140) },
    );
    assert.match(within, /within spread/);
  });

  test('fanout: events arriving out of order, with opaque ids, are neither lost nor duplicated', async () => {
    await withServers([fanoutPeer('swap')], async (bases) => {
      const r = await shortFanout(bases, join(out, 'swap'), ['--subscribers', '3', '--rate', '10']);
      const report = jsonReport(r);
      assert.equal(report.figures.duplicated, 0, r.stderr);
      // The last odd event may still be held back when the run ends: at most one per subscriber.
      assert.ok(Number(report.figures.lost) <= 3, r.stderr);
      assert.ok(Number(report.figures.deliveries) >= Number(report.figures.published) * 3 - 3);
    });
  });

  test('--url twice: subscribers and publishes go round-robin to both replicas', async () => {
    const hub = newHub();
    const servers = [fanoutPeer('ok', 0, hub), fanoutPeer('ok', 0, hub)];
    await withServers(servers, async (bases) => {
      const r = await shortFanout(bases, join(out, 'replicas'), [
        '--subscribers',
        '4',
        '--rate',
        '10',
      ]);
      const report = jsonReport(r);
      assert.equal(report.figures.lost, 0, r.stderr);
      assert.equal(report.target, bases.join(' '));
      for (const s of servers) {
        const served = hub.served.get(s)!;
        assert.equal(served.subscribes, 2);
        assert.ok(served.publishes >= 4, `publishes ${served.publishes}`);
      }
    });
  });

  test('a failed --threshold exits 99 and prints the verdict last; --rounds gives min-max', async () => {
    const r = await shortFanout(
      [t.base],
      join(out, 'thr'),
      [
        '--subscribers',
        '2',
        '--rate',
        '10',
        '--rounds',
        '2',
        '--threshold',
        'delivery_p99_ms<0.000001',
        '--threshold',
        'lost==0',
      ],
      { SSE_PUBLISH_TOKEN: 'lt' },
    );
    assert.equal(r.code, 99, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines.at(-2)!, /^FAIL delivery_p99_ms<0\.000001 \(delivery_p99_ms = [\d.]+ ms\)$/);
    assert.match(lines.at(-1)!, /^PASS lost==0/);
    const report = jsonReport(r);
    assert.equal(report.rounds, 2);
    const [min, max] = report.spread!.delivery_p99_ms!;
    assert.ok(
      min <= Number(report.figures.delivery_p99_ms) &&
        Number(report.figures.delivery_p99_ms) <= max,
    );
  });

  test('a publisher held back by slow answers marks the run harness-limited, exit 3', async () => {
    await withServers([fanoutPeer('ok', 300)], async (bases) => {
      const r = await shortFanout(bases, join(out, 'slow'), [
        '--subscribers',
        '1',
        '--rate',
        '20',
        '--connections',
        '1',
      ]);
      assert.equal(r.code, 3, r.stderr);
      const report = jsonReport(r);
      assert.ok(Number(report.figures.publish_achieved_per_s) < 0.98 * 20);
      assert.ok(Number(report.figures.publish_skipped) > 0);
      assert.equal(report.figures.lost, 0, 'skipped publishes are not expected anywhere');
      assert.match(r.stderr, /HARNESS-LIMITED: achieved publish rate/);
    });
  });

  test('capacity: steps the rate up and reports the highest sustained rate', async () => {
    const r = await harness(
      [
        '--scenario',
        'capacity',
        '--url',
        t.base,
        '--subscribers',
        '2',
        '--rate',
        '10',
        '--max-rate',
        '20',
        '--duration',
        '1',
        '--warmup',
        '0',
        '--out',
        join(out, 'cap'),
        '--json',
      ],
      { SSE_PUBLISH_TOKEN: 'lt' },
    );
    const report = jsonReport(r);
    assert.equal(report.scenario, 'capacity');
    assert.deepEqual(
      report.series.capacity?.map((p) => p.rate),
      [10, 20],
    );
    assert.ok(Number(report.figures.capacity_events_per_s) > 0, r.stderr);
    assert.equal(report.figures.lost, 0);
  });

  test('a bad flag exits 2 with usage; an unreachable target exits 1 with one line', async () => {
    const bad = await harness(['--scenario', 'nope']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown scenario "nope"/);
    assert.match(bad.stderr, /usage: npm run loadtest/);
    const flag = await harness(['--scenario', 'stream', '--bogus']);
    assert.equal(flag.code, 2);
    const thr = await harness(['--scenario', 'fanout', '--threshold', 'p99 under 5']);
    assert.equal(thr.code, 2);
    assert.match(thr.stderr, /--threshold must look like/);
    // The bench sets its own rates and durations: flags it would ignore are refused.
    const bench = await harness(['--scenario', 'fanout', '--bench', '--rounds', '3']);
    assert.equal(bench.code, 2);
    assert.match(bench.stderr, /--rounds does not go with --bench/);
    const port = await freePort();
    const down = await harness(['--scenario', 'stream', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(down.code, 1);
    const lines = down.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
    );
  });
});
