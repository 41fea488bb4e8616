// The fan-out's raw receiver (`--receiver raw`) against the client-library receiver: the same
// counts at a small point against our server (and the server's own delivery count), and the same
// verdict on crafted streams with a gap, a duplicate, two events swapped and a wrong byte in the
// data; a wrong byte in the HTTP chunk framing breaks the raw subscriber's stream. Also the pieces
// it reads with.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  dataShape,
  type IdOrder,
  intactBytes,
  orderOfId,
  publishTimeIn,
} from '../../loadtest/src/fanout/event-data.ts';
import { SseReader } from '../../loadtest/src/raw/sse-reader.ts';
import type { Report } from '../../loadtest/src/report/report.ts';
import { sample, scrapeMetrics } from '../../loadtest/src/server-metrics.ts';
import { runNode } from '../helpers/process.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const TOKEN = 'raw-token';
const RECEIVERS = ['client', 'raw'] as const;
const EVENTS_SENT = 'sse_events_sent_total{route="/sse/channels/:channel"}';

const fanout = (base: string, dir: string, receiver: string, flags: string[]) =>
  runNode(
    [
      'loadtest/src/main.ts',
      '--no-progress',
      '--scenario',
      'fanout',
      '--url',
      base,
      '--receiver',
      receiver,
      '--warmup',
      '0',
      '--out',
      dir,
      '--json',
      ...flags,
    ],
    { SSE_PUBLISH_TOKEN: TOKEN },
    60_000,
  );

const jsonReport = (r: { stdout: string }) =>
  JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Report;

type Fault = 'gap' | 'duplicate' | 'swap' | 'wrong-data-byte' | 'wrong-framing-byte';

const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;

/**
 * A fan-out peer on a bare `net` server that writes every byte itself (HTTP/1.1 heads, chunked
 * framing, SSE), with one fault at the third publish it gets: not sent (gap), sent twice
 * (duplicate), sent after the fourth (swap: ids out of order), a byte of its data's pad changed,
 * or a byte of its chunk-size line changed.
 */
function craftedServer(fault: Fault): net.Server {
  const subscribers = new Set<net.Socket>();
  let published = 0;
  let held: string | null = null;
  const answer = (socket: net.Socket, status: string, body: string) =>
    socket.write(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  const publish = (body: string): string => {
    const n = ++published;
    const data = JSON.stringify((JSON.parse(body) as { data: unknown }).data);
    let frame = chunk(`data: ${data}\nid: ${n}\n\n`);
    if (n === 3 && fault === 'gap') frame = '';
    if (n === 3 && fault === 'duplicate') frame += frame;
    if (n === 3 && fault === 'wrong-data-byte') frame = frame.replace('"pad":"x', '"pad":"y');
    if (n === 3 && fault === 'wrong-framing-byte') frame = `g${frame.slice(1)}`;
    if (n === 3 && fault === 'swap') {
      held = frame;
      frame = '';
    } else if (n === 4 && held !== null) {
      frame += held;
      held = null;
    }
    for (const s of subscribers) if (frame) s.write(frame);
    return JSON.stringify({ ids: [String(n)], subscribers: subscribers.size });
  };
  const request = (socket: net.Socket, head: string, body: string) => {
    const [method, path] = head.split(' ');
    if (method === 'GET' && path!.startsWith('/sse/')) {
      socket.write(
        `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('retry: 1000\n\n')}`,
      );
      subscribers.add(socket);
      socket.on('close', () => subscribers.delete(socket));
    } else if (method === 'POST') answer(socket, '202 Accepted', publish(body));
    else answer(socket, '200 OK', '{}');
  };
  return net.createServer((socket) => {
    let buf = '';
    socket.setEncoding('latin1');
    socket.on('error', () => {});
    socket.on('data', (s: string) => {
      buf += s;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const body = buf.slice(end + 4, end + 4 + length);
        buf = buf.slice(end + 4 + length);
        request(socket, head, body);
      }
    });
  });
}

async function withCrafted<T>(fault: Fault, body: (base: string) => Promise<T>): Promise<T> {
  const server = craftedServer(fault);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await body(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  } finally {
    server.close();
    await new Promise((r) => setTimeout(r, 50));
  }
}

const FAULT_FIGURES = ['lost', 'duplicated', 'out_of_order', 'corrupted'] as const;

describe('load-test harness: the raw receiver', () => {
  let out: string;
  let t: TestServer;
  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'http-sse-raw-'));
    t = await startServer({ publish: { token: TOKEN } });
  });
  after(async () => {
    await t.close();
    rmSync(out, { recursive: true, force: true });
  });

  test('200 subscribers x 20/s for 2 s: both receivers count every delivery the server made', async () => {
    const counts: Record<string, Report['figures']> = {};
    for (const receiver of RECEIVERS) {
      const sentBefore = sample(await scrapeMetrics(t.base), EVENTS_SENT) ?? Number.NaN;
      const r = await fanout(t.base, join(out, `agree-${receiver}`), receiver, [
        '--subscribers',
        '200',
        '--rate',
        '20',
        '--duration',
        '2',
      ]);
      // On a busy machine the harness may lag (exit 3, harness-limited): the counts still hold.
      assert.ok(r.code === 0 || r.code === 3, r.stderr);
      const report = jsonReport(r);
      assert.equal(report.parameters.receiver, receiver);
      assert.match(r.stderr, new RegExp(`fanout against .* \\(receiver: ${receiver}\\)`));
      const f = report.figures;
      const sent = (sample(await scrapeMetrics(t.base), EVENTS_SENT) ?? Number.NaN) - sentBefore;
      assert.equal(f.subscribers_open, 200, receiver);
      assert.ok(Number(f.published) > 0, receiver);
      assert.equal(f.deliveries, Number(f.published) * 200, receiver);
      assert.equal(f.deliveries, sent, `${receiver}: the server's own count of deliveries`);
      // The raw receiver reads the same bytes once per worker (shared-stream.ts); the client none.
      if (receiver === 'raw')
        assert.ok(Number(f.harness_subscribers_shared) > 0, 'shared stream used');
      else assert.equal(f.harness_subscribers_shared, 0);
      counts[receiver] = f;
    }
    for (const name of FAULT_FIGURES) {
      assert.equal(counts.raw![name], 0, name);
      assert.equal(counts.raw![name], counts.client![name], name);
    }
  });

  const expected: Record<Exclude<Fault, 'wrong-framing-byte'>, Record<string, number>> = {
    gap: { lost: 3, duplicated: 0, out_of_order: 0, corrupted: 0 },
    duplicate: { lost: 0, duplicated: 3, out_of_order: 0, corrupted: 0 },
    swap: { lost: 0, duplicated: 0, out_of_order: 3, corrupted: 0 },
    // The event with the wrong byte is not counted as received: lost as well as corrupted.
    'wrong-data-byte': { lost: 3, duplicated: 0, out_of_order: 0, corrupted: 3 },
  };
  for (const [fault, want] of Object.entries(expected)) {
    test(`a crafted stream with a ${fault}: both receivers say so, exit 1`, async () => {
      for (const receiver of RECEIVERS) {
        // A fresh peer per receiver: the fault is at its third publish.
        await withCrafted(fault as Fault, async (base) => {
          const r = await fanout(base, join(out, `${fault}-${receiver}`), receiver, [
            '--subscribers',
            '3',
            '--rate',
            '10',
            '--duration',
            '1',
          ]);
          assert.equal(r.code, 1, `${receiver}: ${r.stderr}`);
          const f = jsonReport(r).figures;
          const got = Object.fromEntries(FAULT_FIGURES.map((k) => [k, f[k]]));
          assert.deepEqual(got, want, receiver);
          assert.match(r.stderr, /EVENTS LOST: \d+, DUPLICATED: \d+, OUT OF ORDER: \d+/);
        });
      }
    });
  }

  test('a wrong byte in the chunk framing ends the raw stream: the events after it are lost', async () => {
    await withCrafted('wrong-framing-byte', async (base) => {
      const r = await fanout(base, join(out, 'framing-raw'), 'raw', [
        '--subscribers',
        '3',
        '--rate',
        '10',
        '--duration',
        '1',
      ]);
      assert.equal(r.code, 1, r.stderr);
      const f = jsonReport(r).figures;
      // Events 1 and 2 arrived; the third (with the broken size line) and every later one did not.
      assert.equal(f.deliveries, 6);
      assert.equal(f.lost, 3 * (Number(f.published) - 2));
      assert.equal(f.corrupted, 0);
    });
  });

  test('--receiver: fanout and capacity only, http:// only for raw', async () => {
    const cases: [string[], RegExp][] = [
      [['--scenario', 'stream', '--receiver', 'raw'], /--receiver goes with --scenario fanout/],
      [['--scenario', 'fanout', '--receiver', 'curl'], /--receiver must be client or raw/],
      [
        ['--scenario', 'fanout', '--receiver', 'raw', '--url', 'https://127.0.0.1:1'],
        /the raw receiver reads raw HTTP\/1\.1 sockets, http:\/\/ only/,
      ],
      [['--scenario', 'fanout', '--rates', '10'], /--rates goes with --scenario fanout --bench/],
      [['--scenario', 'fanout', '--bench', '--servers', 'nginx'], /unknown server "nginx"/],
      [['--scenario', 'fanout', '--bench', '--servers', 'ours-redis'], /needs --broker redis/],
    ];
    for (const [args, message] of cases) {
      const r = await runNode(['loadtest/src/main.ts', ...args], {}, 30_000);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr.split('\n')[0]!, message);
    }
  });
});

describe('raw receiver pieces', () => {
  test('the SSE reader hands over retry: fields of digits only, split anywhere', () => {
    const text = 'retry: 2500\n\nretry: 12x\n\ndata: a\n\nretry:40\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const retries: number[] = [];
      const data: string[] = [];
      const reader = new SseReader(
        (_id, _event, d) => data.push(d.toString()),
        (ms) => retries.push(ms),
      );
      reader.feed(Buffer.from(text.slice(0, cut)));
      reader.feed(Buffer.from(text.slice(cut)));
      assert.deepEqual(retries, [2500, 40], `cut at ${cut}`);
      assert.deepEqual(data, ['a']);
    }
  });

  test('publish time, data shape and id order read off bytes and strings', () => {
    const data = Buffer.from(JSON.stringify({ ts: 1764325530123.25, seq: 4, pad: 'xxx' }));
    assert.equal(publishTimeIn(data), 1764325530123.25);
    assert.equal(publishTimeIn(Buffer.from('{"ts":17,"seq":1}')), 17);
    assert.ok(Number.isNaN(publishTimeIn(Buffer.from('{"seq":1}'))));
    assert.equal(intactBytes(data, dataShape(3)), true);
    assert.equal(intactBytes(data, dataShape(4)), false);
    const wrong = Buffer.from(data);
    wrong[wrong.length - 3] = 0x79;
    assert.equal(intactBytes(wrong, dataShape(3)), false);
    const o: IdOrder = { ms: 0, seq: 0 };
    assert.equal(orderOfId('1764325530123-7', o), true);
    assert.deepEqual(o, { ms: 1764325530123, seq: 7 });
    assert.equal(orderOfId('42', o), true);
    assert.deepEqual(o, { ms: 42, seq: 0 });
    for (const id of ['', 'ev-1', '1-', '-1', '1-2-3', 'a1b2'])
      assert.equal(orderOfId(id, o), false);
  });
});
