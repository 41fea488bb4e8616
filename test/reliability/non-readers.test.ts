// Never-reading subscribers are cut even when what the server wrote sits in kernel buffers (both
// brokers): M raw clients resume a ~1 MiB history and never read a byte. Every one must be cut as a
// slow consumer (socket closed by the server, sse_slow_consumer_disconnects_total + M) within
// limits.stallTimeoutMs + 5 s of opening. The kernel's TCP memory (/proc/net/sockstat) is logged
// before, at the peak and after; the only claim on it is that it comes back down after the cuts.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../../services/shared/eventually.ts';
import { paddedEvents } from '../helpers/delivery.ts';
import { CHANNEL_STREAMS, SLOW_CONSUMERS, scrapeMetrics } from '../helpers/metrics-text.ts';
import { spawnServer } from '../helpers/process.ts';
import { connectNeverReading } from '../helpers/raw-socket.ts';
import { missingRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { publish } from '../helpers/server.ts';
import { pagesToMb, tcpMemPages } from '../helpers/sockstat.ts';

const skip = missingRedis();
// 200 in CI; the measurement of docs/RELIABILITY.md runs it with SSE_TEST_NON_READERS=1000.
const M = Number(process.env.SSE_TEST_NON_READERS ?? 200);
const STALL_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`${M} never-reading subscribers of a 1 MiB replay`, () => {
  let redis: TestRedis | null = null;
  before(async () => {
    if (skip === null) redis = await startRedis();
  });
  after(() => redis?.stop());

  for (const broker of ['memory', 'redis'] as const) {
    test(`${broker} broker: every one is cut (closed by the server, counted as a slow consumer) within stallTimeoutMs + 5 s, though its bytes sit in the kernel`, async (ctx) => {
      if (broker === 'redis' && redis === null) return ctx.skip(skip!);
      const env: Record<string, string> = {
        SSE_STALL_TIMEOUT_MS: String(STALL_MS),
        SSE_HISTORY_MAX_BYTES: String(4 * 1024 * 1024),
      };
      if (broker === 'redis') {
        Object.assign(env, {
          SSE_BROKER: 'redis',
          REDIS_URL: redis!.url,
          SSE_REDIS_KEY_PREFIX: `nr-${process.pid}:`,
        });
      }
      const srv = await spawnServer(env);
      const clients: { socket: net.Socket; closed: Promise<void> }[] = [];
      try {
        const ids: string[] = [];
        for (let b = 0; b < 20; b++) {
          const r = await publish(srv.base, 'heavy', paddedEvents(50, 1000, `${b}-`));
          assert.equal(r.status, 202, JSON.stringify(r.body));
          ids.push(...r.body.ids!);
        }
        const request = `GET /sse/channels/heavy HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${ids[0]}\r\n\r\n`;
        const memBefore = tcpMemPages();
        const slowBefore = (await scrapeMetrics(srv.base)).get(SLOW_CONSUMERS) ?? 0;

        const openedFrom = Date.now();
        for (let i = 0; i < M; i += 50) {
          const batch = await Promise.all(
            Array.from({ length: Math.min(50, M - i) }, () =>
              connectNeverReading(srv.port, request),
            ),
          );
          clients.push(...batch);
        }
        const openedAt = Date.now();
        // The contract's bound, plus the time the opening took.
        const deadline = openedAt + STALL_MS + 5000 + (openedAt - openedFrom);
        let memPeak = memBefore;
        let activePeak = 0;
        let cut = 0;
        for (;;) {
          memPeak = Math.max(memPeak, tcpMemPages());
          const m = await scrapeMetrics(srv.base);
          activePeak = Math.max(activePeak, m.get(CHANNEL_STREAMS) ?? 0);
          cut = (m.get(SLOW_CONSUMERS) ?? 0) - slowBefore;
          if (cut >= M || Date.now() > deadline) break;
          await sleep(200);
        }
        const cutAfter = Date.now() - openedAt;
        const stillOpen = (await scrapeMetrics(srv.base)).get(CHANNEL_STREAMS) ?? 0;

        // Closed by the server: a never-reading socket notices once it reads what the kernel holds.
        let closed = 0;
        for (const c of clients) {
          c.socket.on('data', () => {});
          c.socket.resume();
          c.closed.then(() => closed++);
        }
        await eventually(() => closed === M, 15_000, 'client sockets closed').catch(() => {});
        const memAfterClose = tcpMemPages();
        let memAfter = memAfterClose;
        if (memPeak - memBefore > 2560) {
          await eventually(
            () => {
              memAfter = tcpMemPages();
              return memAfter < memPeak;
            },
            15_000,
            'kernel TCP memory back below its peak',
          ).catch(() => {});
        }
        ctx.diagnostic(
          `${M} opened in ${openedAt - openedFrom} ms; streams open at the peak ${activePeak}; cut as slow consumers: ${cut} of ${M} (${cutAfter} ms after opening, bound ${deadline - openedAt} ms), still open then ${stillOpen}; ` +
            `closed by the server: ${closed} of ${M}`,
        );
        ctx.diagnostic(
          `kernel TCP memory: before ${memBefore} pages (${pagesToMb(memBefore)}), peak ${memPeak} (${pagesToMb(memPeak)}), after ${memAfter} (${pagesToMb(memAfter)})`,
        );
        assert.equal(
          cut,
          M,
          `${cut} of ${M} never-readers cut within ${deadline - openedAt} ms; ${stillOpen} streams still open`,
        );
        assert.equal(closed, M, `${closed} of ${M} client sockets closed by the server`);
        if (memPeak - memBefore > 2560) {
          assert.ok(memAfter < memPeak, `kernel TCP memory ${memAfter} pages, peak ${memPeak}`);
        }
      } finally {
        for (const c of clients) c.socket.destroy();
        await srv.stop();
      }
    });
  }
});
