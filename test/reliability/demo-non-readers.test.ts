// 100 clients open /sse/test?count=100000&interval_ms=0 and never read (docs/RELIABILITY.md row
// "never-reading demo clients"). Before: RSS 119 -> 740 MB, uncounted, never cut. Now each is a
// counted connection, written only as its socket drains, and cut by the stall rule.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { mb, rssOf } from '../helpers/memory.ts';
import { type ServerProcess, spawnServer } from '../helpers/process.ts';
import { openRaw, statusOf } from '../helpers/raw-socket.ts';
import { dechunk, eventually, rawExchange, splitResponse } from '../helpers/server.ts';

const CLIENTS = 100;
const LONG = 'GET /sse/test?count=100000&interval_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n';

async function activeDemoStreams(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/sse_connections_active\{route="\/sse\/test"\} (\d+)/.exec(text)?.[1] ?? -1);
}

describe('never-reading /sse/test clients', () => {
  let srv: ServerProcess;
  before(async () => {
    srv = await spawnServer({
      // Long enough for all 100 to be open at once (opening them takes ~10 s on 2 busy cores).
      SSE_STALL_TIMEOUT_MS: '15000',
      SSE_MAX_CONNECTIONS: String(CLIENTS + 5),
    });
  });
  after(async () => {
    srv.kill();
    await srv.exited;
  });

  test(`${CLIENTS} non-readers are counted, bounded in memory and cut; a reader gets every byte`, async (t) => {
    const rssBefore = rssOf(srv.child.pid!);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const { socket, head } = await openRaw(srv.port, LONG);
      assert.equal(statusOf(head), 200);
      socket.pause(); // never reads again
      sockets.push(socket);
    }
    const counted = await activeDemoStreams(srv.base);
    const rssOpen = rssOf(srv.child.pid!);
    // The limit counts them: maxConnections is CLIENTS + 5, so at most 5 more streams may open.
    const extra: net.Socket[] = [];
    let refused = '';
    for (let i = 0; i < 6 && refused === ''; i++) {
      const { socket, head } = await openRaw(srv.port, LONG);
      socket.pause();
      extra.push(socket);
      if (statusOf(head) === 503) refused = head;
    }
    // A client that reads gets the whole stream while the others sit there.
    for (const s of extra) s.destroy();
    await eventually(
      async () => (await activeDemoStreams(srv.base)) <= CLIENTS,
      10_000,
      'extras closed',
    );
    const raw = await rawExchange(
      srv.port,
      'GET /sse/test?count=100000&interval_ms=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      undefined,
      60_000,
    );
    const { payload, complete } = dechunk(splitResponse(raw).body);
    const started = Date.now();
    await eventually(
      async () => (await activeDemoStreams(srv.base)) === 0,
      30_000,
      'non-readers cut',
    );
    const rssAfter = rssOf(srv.child.pid!);
    const cutAfter = Date.now() - started;
    t.diagnostic(
      `streams counted while open: ${counted} of ${CLIENTS}; refused once over maxConnections: ${statusOf(refused)}`,
    );
    t.diagnostic(
      `server RSS: before ${mb(rssBefore)}, ${CLIENTS} non-readers open ${mb(rssOpen)}, after the cut ${mb(rssAfter)}`,
    );
    t.diagnostic(
      `the reading client got ${payload.length} bytes, complete=${complete}; non-readers all cut ${cutAfter} ms after it finished`,
    );
    for (const s of sockets) s.destroy();
    assert.equal(counted, CLIENTS);
    assert.equal(statusOf(refused), 503, 'a stream past maxConnections is refused');
    assert.ok(complete);
    assert.equal(payload.split('\n\n').length - 1, 100_000);
    // Each non-reader holds at most ~80 KB of queued bytes (DEMO_PUMP_HIGH_WATER + a batch): 8 MB
    // for 100. The rest of the growth is GC slack: some 500 MB of batches passed through into the
    // kernel's socket buffers (which RSS does not count) before those filled; measured +90 MB.
    // 250 MB leaves room for a slower GC on a busy machine; before the change it was +620 MB.
    assert.ok(rssOpen - rssBefore < 250 * 1024 * 1024, `RSS grew ${mb(rssOpen - rssBefore)}`);
  });
});
