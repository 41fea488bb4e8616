// The one timer over every open stream, with a fake clock (node:test mock timers): heartbeats to
// idle streams only, and the stall rule, on the process's queue and on what the kernel holds.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { createLogger } from '../../services/server/src/logger.ts';
import { createServerMetrics } from '../../services/server/src/metrics.ts';
import { SseConnection } from '../../services/server/src/sse/connection.ts';
import { StreamWatch } from '../../services/server/src/sse/stream-watch.ts';

const HEARTBEAT_MS = 1000;
const STALL_MS = 5000;

/** A socket that records writes; `stuck` keeps bytes in its queue (a client not reading). */
class FakeSocket extends EventEmitter {
  written: string[] = [];
  writableLength = 0;
  bytesWritten = 0;
  writableNeedDrain = false;
  destroyed = false;
  stuck = false;
  cork() {}
  uncork() {}
  setNoDelay() {}
  write(chunk: Buffer | string): boolean {
    const n = Buffer.byteLength(chunk);
    this.written.push(chunk.toString());
    this.bytesWritten += n;
    if (this.stuck) this.writableLength += n;
    return true;
  }
  /** The client read everything queued. */
  drained() {
    this.writableLength = 0;
  }
  destroy() {
    this.destroyed = true;
  }
}

function stream(): { conn: SseConnection; socket: FakeSocket } {
  const socket = new FakeSocket();
  const req = { socket, httpVersionMajor: 1, httpVersionMinor: 1, headers: {} };
  const res = Object.assign(new EventEmitter(), {
    socket,
    writeHead() {},
    flushHeaders() {},
    end() {},
  });
  const conn = new SseConnection(
    req as unknown as IncomingMessage,
    res as unknown as ServerResponse,
    '/sse/channels/:channel',
    1 << 20,
    '127.0.0.1',
  );
  conn.sendHead({}, [Buffer.from('retry: 1000\n\n')]);
  return { conn, socket: socket as FakeSocket & Socket };
}

function watchOver(conns: SseConnection[]) {
  const metrics = createServerMetrics(() => 0);
  const watch = new StreamWatch(
    new Set(conns),
    { heartbeatMs: HEARTBEAT_MS, retryMs: 1000, stallTimeoutMs: STALL_MS },
    metrics,
    createLogger('silent'),
    false,
  );
  if (conns.length > 0) watch.streamOpened();
  return { watch, metrics };
}

const pings = (s: FakeSocket) => s.written.filter((w) => w.includes(': ping')).length;

describe('the stream watch on a fake clock', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  test('a heartbeat goes only to streams idle for heartbeatMs, once per idle period', () => {
    const idle = stream();
    const busy = stream();
    const { watch } = watchOver([idle.conn, busy.conn]);
    for (let t = 0; t < 10; t++) {
      mock.timers.tick(HEARTBEAT_MS / 2);
      busy.conn.send(Buffer.from('data: x\n\n'));
    }
    assert.equal(pings(busy.socket), 0, 'a stream that keeps writing needs no heartbeat');
    assert.ok(pings(idle.socket) >= 4 && pings(idle.socket) <= 5, `${pings(idle.socket)} pings`);
    watch.stop();
  });

  test('no timer fires once the watch stopped', () => {
    const s = stream();
    const { watch } = watchOver([s.conn]);
    watch.stop();
    mock.timers.tick(HEARTBEAT_MS * 10);
    assert.equal(pings(s.socket), 0);
  });

  test('stall rule: bytes waiting in the process that do not move for stallTimeoutMs cut the stream', () => {
    const stalled = stream();
    const slow = stream();
    stalled.socket.stuck = true;
    slow.socket.stuck = true;
    const { watch } = watchOver([stalled.conn, slow.conn]);
    stalled.conn.send(Buffer.from('data: a\n\n'));
    slow.conn.send(Buffer.from('data: a\n\n'));
    for (let t = 0; t < 2 * STALL_MS; t += HEARTBEAT_MS / 2) {
      mock.timers.tick(HEARTBEAT_MS / 2);
      // The slow client takes a few bytes every tick: it is not stalled.
      slow.socket.writableLength = Math.max(0, slow.socket.writableLength - 2);
    }
    assert.equal(stalled.conn.ended, true);
    assert.equal(stalled.conn.closeReason, 'slow_consumer');
    assert.equal(stalled.socket.destroyed, true);
    assert.equal(slow.conn.ended, false, 'progress keeps it');
    watch.stop();
  });

  test('stall rule: bytes the kernel holds unacknowledged count too', () => {
    const neverReads = stream();
    const reads = stream();
    const { watch } = watchOver([neverReads.conn, reads.conn]);
    for (let t = 0; t < 2 * STALL_MS; t += HEARTBEAT_MS / 2) {
      // The process queue is empty for both; the kernel scan says what is still unacknowledged.
      neverReads.conn.kernelScanned(neverReads.conn.handedToKernel(), 100_000);
      reads.conn.send(Buffer.from('data: more\n\n'));
      reads.conn.kernelScanned(reads.conn.handedToKernel(), 10);
      mock.timers.tick(HEARTBEAT_MS / 2);
    }
    assert.equal(neverReads.conn.closeReason, 'slow_consumer');
    assert.equal(reads.conn.ended, false);
    watch.stop();
  });

  test('a stream whose token expires gets event: reauth and ends within a tick of exp', () => {
    const expiring = stream();
    const forever = stream();
    expiring.conn.expiresAt = Date.now() + 2500;
    const { watch } = watchOver([expiring.conn, forever.conn]);
    mock.timers.tick(2000);
    assert.equal(expiring.conn.ended, false, 'not before exp');
    mock.timers.tick(HEARTBEAT_MS);
    assert.equal(expiring.conn.ended, true);
    assert.equal(expiring.conn.closeReason, 'token_expired');
    const last = expiring.socket.written.join('');
    assert.match(last, /retry: 1000\nevent: reauth\ndata: \{"reason":"token_expired"\}\n\n/);
    assert.equal(forever.conn.ended, false);
    watch.stop();
  });

  test('a client that read everything is never stalled, however long it idles', () => {
    const s = stream();
    const { watch } = watchOver([s.conn]);
    s.conn.kernelScanned(s.conn.handedToKernel(), 0);
    mock.timers.tick(STALL_MS * 10);
    assert.equal(s.conn.ended, false);
    assert.ok(pings(s.socket) > 0);
    watch.stop();
  });
});
