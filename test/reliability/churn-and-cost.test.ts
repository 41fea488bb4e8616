// Open/abort churn and the memory cost of a connection and of a channel (docs/RELIABILITY.md).
// The server runs in this process so that the heap can be measured after a full GC.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { heapAfterGc, mb } from '../helpers/memory.ts';
import { openRaw } from '../helpers/raw-socket.ts';
import { eventually, openStreams, startServer, type TestServer } from '../helpers/server.ts';

const CYCLES = 20_000;
const WAVE = 500; // sockets open at once: 2 fds each in this process, far below 20,000

function request(i: number): string {
  return i % 2 === 0
    ? `GET /sse/channels/churn-${i % 50} HTTP/1.1\r\nHost: x\r\n\r\n`
    : 'GET /sse/test?interval_ms=1000&count=100 HTTP/1.1\r\nHost: x\r\n\r\n';
}

async function wave(port: number, from: number): Promise<void> {
  const opened = await Promise.all(
    Array.from({ length: WAVE }, (_, k) => openRaw(port, request(from + k))),
  );
  for (const [k, { socket, head }] of opened.entries()) {
    assert.match(head, /^HTTP\/1\.1 200/);
    socket.on('error', () => {});
    if (k % 2 === 0)
      socket.resetAndDestroy(); // RST
    else socket.end(); // clean FIN
  }
}

describe('open/abort churn', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ heartbeatMs: 3_600_000 });
  });
  after(() => t.close());

  test(`${CYCLES} open/abort cycles (half RST, half FIN) leave nothing behind`, async (d) => {
    await wave(t.port, 0); // warm-up: code paths compiled, pools allocated
    await eventually(() => openStreams(t.server) === 0, 10_000, 'warm-up streams gone');
    const heapBefore = await heapAfterGc();
    const started = Date.now();
    for (let i = 0; i < CYCLES; i += WAVE) {
      await wave(t.port, i);
      await eventually(() => openStreams(t.server) === 0, 10_000, `wave ${i / WAVE} gone`);
    }
    const seconds = (Date.now() - started) / 1000;
    const heapAfter = await heapAfterGc();
    d.diagnostic(
      `${CYCLES} cycles in waves of ${WAVE} in ${seconds.toFixed(1)} s (${Math.round(CYCLES / seconds)}/s); active after: ${openStreams(t.server)}`,
    );
    d.diagnostic(
      `heap after GC: before ${mb(heapBefore)}, after ${mb(heapAfter)} (${((heapAfter - heapBefore) / 1024).toFixed(0)} KB)`,
    );
    assert.equal(openStreams(t.server), 0);
    assert.equal(t.server.streams.countByRoute('/sse/test'), 0);
    // A leak of even 100 bytes per cycle would be 2 MB; 1 KB per cycle 20 MB. 5 MB is room for
    // lazily compiled code and allocator pools, far below what a per-cycle leak adds up to.
    assert.ok(heapAfter - heapBefore < 5 * 1024 * 1024, `heap grew ${mb(heapAfter - heapBefore)}`);
  });

  test('memory cost of one idle stream and of one channel', async (d) => {
    const N = 2000;
    // The raw client sockets live in this process too: measure their own cost first.
    const sink = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const sinkPort = (sink.address() as net.AddressInfo).port;
    let base = await heapAfterGc();
    const plain: net.Socket[] = [];
    for (let i = 0; i < N; i++) {
      const s = net.connect(sinkPort, '127.0.0.1');
      s.on('error', () => {});
      plain.push(s);
    }
    await eventually(() => plain.every((s) => !s.connecting), 10_000, 'plain sockets');
    const clientPair = ((await heapAfterGc()) - base) / N;
    for (const s of plain) s.destroy();
    sink.close();

    base = await heapAfterGc();
    const streams: net.Socket[] = [];
    for (let i = 0; i < N; i += 250) {
      const batch = await Promise.all(
        Array.from({ length: 250 }, () =>
          openRaw(t.port, 'GET /sse/channels/idle HTTP/1.1\r\nHost: x\r\n\r\n'),
        ),
      );
      for (const { socket } of batch) streams.push(socket);
    }
    const perStream = ((await heapAfterGc()) - base) / N - clientPair;
    for (const s of streams) s.destroy();
    await eventually(() => openStreams(t.server) === 0, 10_000, 'idle streams gone');

    base = await heapAfterGc();
    for (let i = 0; i < N; i++) await t.server.hub.publish(`cost-${i}`, [{ data: 'x' }]);
    const perChannel = ((await heapAfterGc()) - base) / N;
    d.diagnostic(
      `one idle channel stream: ${(perStream / 1024).toFixed(1)} KB of heap on the server (a connected socket pair in this process: ${(clientPair / 1024).toFixed(1)} KB, subtracted)`,
    );
    d.diagnostic(
      `one channel with one event in its history and no subscriber: ${(perChannel / 1024).toFixed(1)} KB of heap`,
    );
    assert.ok(perStream > 0 && perChannel > 0);
  });
});
