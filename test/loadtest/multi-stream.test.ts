// The fan-out harness on several-channel streams (`--channels-per-stream N`): a short fanout run
// with N = 4 against an in-process server with both receivers (every event at every stream once,
// the server's own /sse/streams delivery count the same); the raw receiver's envelope reader on
// events framed as the server frames them (escaped quotes, split anywhere), the cursor reader on
// the server's own cursor encoder, the ledger's per-channel order, and the flag's validation.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dataShape, eventData, type IdOrder } from '../../loadtest/src/fanout/event-data.ts';
import { DeliveryLedger } from '../../loadtest/src/fanout/ledger.ts';
import type { WorkerReply } from '../../loadtest/src/fanout/protocol.ts';
import { rigChannels, subscribePath } from '../../loadtest/src/fanout/rig.ts';
import {
  CursorReader,
  channelHash,
  EnvelopeReader,
} from '../../loadtest/src/fanout/stream-envelope.ts';
import { SseReader } from '../../loadtest/src/raw/sse-reader.ts';
import type { Report } from '../../loadtest/src/report/report.ts';
import { sample, scrapeMetrics } from '../../loadtest/src/server-metrics.ts';
import {
  cursorText,
  encodeEntry,
  channelHash as serverChannelHash,
} from '../../services/server/src/wire/stream-cursor.ts';
import { runNode } from '../helpers/process.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const TOKEN = 'multi-token';
const STREAMS_SENT = 'sse_events_sent_total{route="/sse/streams"}';

const jsonReport = (r: { stdout: string }) =>
  JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Report;

const harness = (args: string[]) =>
  runNode(['loadtest/src/main.ts', '--no-progress', ...args], { SSE_PUBLISH_TOKEN: TOKEN }, 60_000);

describe('load-test harness: several channels per stream', () => {
  let out: string;
  let t: TestServer;
  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'http-sse-multi-'));
    t = await startServer({ publish: { token: TOKEN } });
  });
  after(async () => {
    await t.close();
    rmSync(out, { recursive: true, force: true });
  });

  for (const receiver of ['client', 'raw'] as const) {
    test(`fanout --channels-per-stream 4, ${receiver} receiver: every event at every stream once`, async () => {
      const sentBefore = sample(await scrapeMetrics(t.base), STREAMS_SENT) ?? Number.NaN;
      const r = await harness([
        '--scenario',
        'fanout',
        '--url',
        t.base,
        '--receiver',
        receiver,
        '--channels-per-stream',
        '4',
        '--subscribers',
        '20',
        '--rate',
        '5',
        '--duration',
        '1',
        '--warmup',
        '0',
        '--workers',
        '2',
        '--out',
        join(out, receiver),
        '--json',
      ]);
      // On a busy machine the harness may lag (exit 3, harness-limited): the counts still hold.
      assert.ok(r.code === 0 || r.code === 3, r.stderr);
      const report = jsonReport(r);
      assert.equal(report.parameters.channels_per_stream, 4);
      assert.equal(report.parameters.rate_per_s, 5);
      assert.equal(report.parameters.events_per_stream_per_s, 20);
      assert.equal(report.parameters.receiver, receiver);
      const f = report.figures;
      const sent = (sample(await scrapeMetrics(t.base), STREAMS_SENT) ?? Number.NaN) - sentBefore;
      assert.equal(f.subscribers_open, 20);
      assert.equal(f.publish_offered_per_s, 20, 'rate x channels');
      assert.ok(Number(f.published) > 0);
      assert.equal(f.deliveries, Number(f.published) * 20);
      assert.equal(f.deliveries_expected, f.deliveries);
      assert.equal(f.deliveries, sent, "the server's own /sse/streams delivery count");
      for (const name of ['lost', 'duplicated', 'out_of_order', 'corrupted']) {
        assert.equal(f[name], 0, name);
      }
      // The publishes were spread over the four channels (round-robin: 5 each when none skipped).
      const page = (await fetch(
        `${t.base}/channels?prefix=${encodeURIComponent(`${report.parameters.channel}.`)}`,
      ).then((res) => res.json())) as { channels: { name: string; historyLength: number }[] };
      const held = page.channels.map((c) => c.historyLength);
      assert.equal(page.channels.length, 4, JSON.stringify(page));
      assert.ok(
        held.every((n) => n > 0),
        JSON.stringify(held),
      );
      assert.equal(
        held.reduce((a, b) => a + b, 0),
        f.published,
      );
      assert.ok(Number(f.bytes_per_delivery) > 0);
      assert.ok(f.server_cpu_per_delivery_ms !== null);
      assert.ok(Number(f.delivery_p99_ms) > 0);
    });
  }

  test('--channels-per-stream: 1 to 32, fanout and capacity only, ours only in the bench', async () => {
    const cases: [string[], RegExp][] = [
      [['--scenario', 'fanout', '--channels-per-stream', '0'], /--channels-per-stream needs/],
      [['--scenario', 'fanout', '--channels-per-stream', '33'], /--channels-per-stream needs/],
      [['--scenario', 'capacity', '--channels-per-stream', '2.5'], /--channels-per-stream needs/],
      [['--scenario', 'stream', '--channels-per-stream', '2'], /--channels-per-stream goes with/],
      [['--scenario', 'storm', '--channels-per-stream', '2'], /--channels-per-stream goes with/],
      [
        ['--scenario', 'fanout', '--bench', '--channels-per-stream', '2', '--servers', 'preframed'],
        /--servers: preframed serves no \/sse\/streams/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runNode(['loadtest/src/main.ts', ...args], {}, 30_000);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr.split('\n')[0]!, message);
    }
  });
});

/** One event of a several-channel stream as the server writes it (envelope, then the cursor). */
function frame(channel: string, data: string, cursor: string): string {
  return `data: ${JSON.stringify({ channel, data })}\nid: ${cursor}\n\n`;
}

describe('several-channel stream readers', () => {
  test('the rig names the channels and the stream path', () => {
    assert.deepEqual(rigChannels('lt', 1), ['lt']);
    assert.deepEqual(rigChannels('lt', 3), ['lt.0', 'lt.1', 'lt.2']);
    assert.equal(subscribePath('lt:x', 1), '/sse/channels/lt%3Ax');
    assert.equal(subscribePath('lt', 2), '/sse/streams?channel=lt.0&channel=lt.1');
  });

  test('the cursor reader reads each channel off the server-encoded cursor', () => {
    const names = rigChannels('loadtest-abc', 12);
    const base = 1_764_325_530_000;
    const positions = names.map((_, i) => ({ ms: base + (i % 3 === 0 ? -5 : 700 * i), seq: i }));
    assert.deepEqual(names.map(channelHash), names.map(serverChannelHash));
    const cursor = cursorText(
      base,
      names.map((n, i) => encodeEntry(serverChannelHash(n), positions[i]!, base)),
    );
    const reader = new CursorReader();
    const into: IdOrder = { ms: 0, seq: 0 };
    names.forEach((n, i) => {
      assert.equal(reader.read(cursor, channelHash(n), into), true, n);
      assert.deepEqual(into, positions[i]);
    });
    assert.equal(reader.read(cursor, channelHash('not-there'), into), false);
    assert.equal(reader.read('1764325530123-0', channelHash(names[0]!), into), false);
    assert.equal(reader.read(cursor.slice(0, 12), channelHash(names[11]!), into), false);
  });

  test('the raw envelope reader takes channel, seq, ts and shape out of escaped data, split anywhere', () => {
    const prefix = 'lt-x.';
    const names = rigChannels('lt-x', 12);
    const shape = dataShape(5);
    const base = 1_764_325_530_000;
    const events = [0, 11, 3, 10].map((c, k) => ({
      channel: c,
      seq: 1000 + k,
      ts: base + 0.25 * k,
      data: JSON.stringify(eventData(base + 0.25 * k, 1000 + k, 'xxxxx')),
    }));
    const cursor = cursorText(base, [
      encodeEntry(serverChannelHash(names[0]!), { ms: 1, seq: 0 }, 0),
    ]);
    const text = events.map((e) => frame(names[e.channel]!, e.data, cursor)).join('');
    // The inner data's quotes arrive escaped: the unescaped keys are not there.
    assert.ok(text.includes('{\\"ts\\":') && !text.includes('"seq":'));
    const wire = Buffer.from(text);
    for (let cut = 0; cut <= wire.length; cut++) {
      const got: unknown[] = [];
      const envelopes = new EnvelopeReader(prefix, names.length);
      const reader = new SseReader((id, _event, data) => {
        assert.equal(envelopes.read(data, shape), true, `cut ${cut}`);
        const { channel, seq, ts, intact } = envelopes;
        got.push({ channel, seq, ts, intact, id });
      });
      reader.feed(wire.subarray(0, cut));
      // The rest in two pieces: a split inside the escaped keys or the digits is read the same.
      const mid = cut + Math.floor((wire.length - cut) / 2);
      reader.feed(wire.subarray(cut, mid));
      reader.feed(wire.subarray(mid));
      assert.deepEqual(
        got,
        events.map((e) => ({ channel: e.channel, seq: e.seq, ts: e.ts, intact: true, id: cursor })),
        `cut at ${cut}`,
      );
    }
  });

  test('the raw envelope reader refuses what is not an envelope of the stream and flags a wrong byte', () => {
    const r = new EnvelopeReader('lt.', 4);
    const shape = dataShape(3);
    const inner = JSON.stringify(eventData(17.5, 9, 'xxx'));
    const envelope = (channel: string, data = inner) =>
      Buffer.from(JSON.stringify({ channel, data }));
    assert.equal(r.read(envelope('lt.3'), shape), true);
    assert.deepEqual([r.channel, r.seq, r.ts, r.intact], [3, 9, 17.5, true]);
    for (const channel of ['lt.4', 'lt.01', 'lt.', 'other.1', 'lt.1x']) {
      assert.equal(r.read(envelope(channel), shape), false, channel);
      assert.equal(r.channel, -1);
    }
    assert.equal(r.read(Buffer.from(inner), shape), false, 'bare data, no envelope');
    assert.equal(r.read(Buffer.from('{"channel":"lt.1","data":"x"'), shape), false, 'cut short');
    // A wrong byte in the pad, or another pad length: read, but not intact.
    assert.equal(r.read(envelope('lt.0', inner.replace('xxx', 'xyx')), shape), true);
    assert.equal(r.intact, false);
    assert.equal(r.read(envelope('lt.0'), dataShape(4)), true);
    assert.equal(r.intact, false);
    // No shape known yet: read, intact; no seq: NaN.
    assert.equal(r.read(envelope('lt.2', '{"ts":1}'), null), true);
    assert.equal(r.intact, true);
    assert.ok(Number.isNaN(r.seq));
    assert.equal(r.ts, 1);
  });

  test('the ledger counts out of order per channel, by each channel position in the cursor', () => {
    const ledger = new DeliveryLedger();
    try {
      ledger.useStreams({ prefix: 'c.', count: 2 });
      const sub = ledger.add();
      sub.opened = true;
      const names = rigChannels('c', 2);
      const at = (a: [number, number], b: [number, number]) =>
        cursorText(0, [
          encodeEntry(serverChannelHash(names[0]!), { ms: a[0], seq: a[1] }, 0),
          encodeEntry(serverChannelHash(names[1]!), { ms: b[0], seq: b[1] }, 0),
        ]);
      ledger.deliverOnChannel(sub, 0, 0, 1, true, at([50, 0], [0, 0]), 2);
      // Channel 1 behind channel 0's time: another channel, no order between them.
      ledger.deliverOnChannel(sub, 1, 1, 1, true, at([50, 0], [40, 0]), 2);
      ledger.deliverOnChannel(sub, 0, 2, 1, true, at([50, 1], [40, 0]), 2);
      // Channel 0 going back (50-0 after 50-1): out of order, still received.
      ledger.deliverOnChannel(sub, 0, 3, 1, true, at([50, 0], [40, 0]), 2);
      // No envelope of the stream's channels, and a cursor without it: corrupted, not received.
      ledger.deliverOnChannel(sub, -1, 4, 1, true, at([60, 0], [40, 0]), 2);
      ledger.deliverOnChannel(sub, 1, 5, 1, true, '1764325530123-0', 2);
      const reply = ledger.answer({
        type: 'collect',
        from: 0,
        to: 6,
        rejected: [],
        forget: false,
      }) as Extract<WorkerReply, { type: 'stats' }>;
      const { deliveries, lost, duplicated, outOfOrder, corrupted } = reply.stats;
      assert.deepEqual(
        { deliveries, lost, duplicated, outOfOrder, corrupted },
        { deliveries: 4, lost: 2, duplicated: 0, outOfOrder: 1, corrupted: 2 },
      );
      assert.deepEqual(reply.stats.errors, { bad_envelope: 1, unreadable_cursor: 1 });
    } finally {
      ledger.stop();
    }
  });
});
