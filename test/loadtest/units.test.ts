// The harness's small pieces: sequence tracking out of order, thresholds, rounds, units, nines.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  publishTime,
  sequenceNumber,
  sequenceNumberIn,
} from '../../loadtest/src/fanout/event-data.ts';
import { SeqTracker } from '../../loadtest/src/fanout/seq-tracker.ts';
import { nines } from '../../loadtest/src/report/chart.ts';
import { formatFigure } from '../../loadtest/src/report/table.ts';
import { aggregate } from '../../loadtest/src/rounds.ts';
import {
  listenQueueFigures,
  listenQueueWarnings,
  readListenQueue,
  tcpExtCounter,
} from '../../loadtest/src/storm/listen-queue.ts';
import { evaluate, parseThreshold } from '../../loadtest/src/thresholds.ts';

describe('load-test harness pieces', () => {
  test("the kernel's accept-queue overflows: read by name, counted over the storm, warned of", () => {
    const netstat =
      'TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 3 17 19\n' +
      'IpExt: InNoRoutes\nIpExt: 0\n';
    assert.equal(tcpExtCounter(netstat, 'ListenOverflows'), 17);
    assert.equal(tcpExtCounter(netstat, 'ListenDrops'), 19);
    assert.equal(tcpExtCounter(netstat, 'Nope'), null);
    assert.equal(tcpExtCounter('TcpExt: A B\nTcpExt: 1\n', 'B'), null, 'a short value line');
    assert.equal(tcpExtCounter('', 'ListenOverflows'), null);
    const f = listenQueueFigures(
      { overflows: 100, somaxconn: 4096 },
      { overflows: 2421, somaxconn: 4096 },
    );
    assert.deepEqual(f, { kernel_listen_overflows: 2321, kernel_somaxconn: 4096 });
    assert.match(
      listenQueueWarnings(f)[0]!,
      /overflowed 2321 time\(s\) \(net.core.somaxconn = 4096\)/,
    );
    assert.deepEqual(listenQueueWarnings({ ...f, kernel_listen_overflows: 0 }), []);
    assert.deepEqual(
      listenQueueFigures({ overflows: null, somaxconn: null }, { overflows: 5, somaxconn: 1 }),
      { kernel_listen_overflows: null, kernel_somaxconn: 1 },
    );
    // Another host's counters are not this one's: not read.
    assert.deepEqual(readListenQueue(['http://10.1.2.3:24856']), {
      overflows: null,
      somaxconn: null,
    });
    assert.deepEqual(readListenQueue(['http://127.0.0.1:1'], '/nonexistent'), {
      overflows: null,
      somaxconn: null,
    });
  });

  test('SeqTracker counts seqs received in any order, duplicates, and holes', () => {
    const t = new SeqTracker();
    for (const s of [0, 2, 1, 4, 5]) assert.equal(t.add(s), true);
    assert.equal(t.add(2), false, 'duplicate above the prefix');
    assert.equal(t.add(0), false, 'duplicate in the prefix');
    assert.equal(t.countIn(0, 6), 5, 'seq 3 missing');
    assert.equal(t.has(3), false);
    assert.equal(t.countIn(4, 6), 2);
    t.forget(6);
    assert.equal(t.add(6), true);
    assert.equal(t.countIn(6, 7), 1);
  });

  test('event data fields are read without JSON.parse', () => {
    const data = JSON.stringify({ ts: 1764325530123.25, seq: 42, pad: 'x"seq":7' });
    assert.equal(publishTime(data), 1764325530123.25);
    assert.equal(sequenceNumber(data), 42);
    assert.ok(Number.isNaN(sequenceNumber('{"nothing":1}')));
    assert.equal(sequenceNumberIn(Buffer.from('{"seq":1234567,"pad":"xx"}')), 1234567);
    assert.ok(Number.isNaN(sequenceNumberIn(Buffer.from('{"seq":"7"}'))));
  });

  test('thresholds parse k6-like expressions and judge figures; a missing figure fails', () => {
    const t = parseThreshold('delivery_p99_ms<250');
    assert.deepEqual(t, {
      text: 'delivery_p99_ms<250',
      figure: 'delivery_p99_ms',
      op: '<',
      value: 250,
    });
    const v = evaluate([t, parseThreshold('lost == 0'), parseThreshold('nope>=1')], {
      delivery_p99_ms: 251,
      lost: 0,
    });
    assert.deepEqual(
      v.map((x) => x.ok),
      [false, true, false],
    );
    assert.throws(() => parseThreshold('p99 < fast'), /--threshold must look like/);
  });

  test('rounds: medians with min-max', () => {
    const { figures, spread } = aggregate([
      { a: 3, b: null },
      { a: 1, b: null },
      { a: 2, b: null },
    ]);
    assert.equal(figures.a, 2);
    assert.deepEqual(spread.a, [1, 3]);
    assert.equal(figures.b, null);
  });

  test('one unit per kind: ms, IEC bytes, per second, percent', () => {
    assert.equal(formatFigure('x_ms', 1.234), '1.23 ms');
    assert.equal(formatFigure('x_ms', 0.0042), '0.0042 ms');
    assert.equal(formatFigure('x_bytes', 1536), '1.5 KiB');
    assert.equal(formatFigure('x_bytes', 5 * 1024 * 1024), '5.0 MiB');
    assert.equal(formatFigure('x_per_s', 12.34), '12.3/s');
    assert.equal(formatFigure('x_pct', 50), '50.0 %');
    assert.equal(formatFigure('x', null), 'n/a');
  });

  test('the nines axis puts 90, 99 and 99.9 % at 1, 2 and 3', () => {
    assert.equal(nines(0), 0);
    assert.ok(Math.abs(nines(90) - 1) < 1e-9);
    assert.ok(Math.abs(nines(99) - 2) < 1e-9);
    assert.ok(Math.abs(nines(99.9) - 3) < 1e-9);
  });
});
