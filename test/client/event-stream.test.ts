// Library: openEventStream / connectEventStream against small servers that send exact bytes.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  type CloseResult,
  closeDefaultDispatchers,
  connectEventStream,
  openEventStream,
  SseClientError,
  type SseEvent,
} from '../../services/client/src/index.ts';
import { freePort } from '../../services/shared/free-port.ts';
import { exampleEvent, SSE_HEADERS, type StubServer, startStub } from '../helpers/stub-server.ts';

after(() => closeDefaultDispatchers());

async function withServer<T>(
  handler: Parameters<typeof startStub>[0],
  fn: (server: StubServer) => Promise<T>,
): Promise<T> {
  const server = await startStub(handler);
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

async function collect(iterable: AsyncIterable<SseEvent>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

const exampleStream = (_req: unknown, res: import('node:http').ServerResponse) => {
  res.writeHead(200, SSE_HEADERS);
  let text = '';
  for (let n = 1; n <= 10; n++) text += exampleEvent(n);
  res.end(text);
};

describe('openEventStream (async iterable)', () => {
  test('yields the example stream and ends when the server ends it', async () => {
    await withServer(exampleStream, async (server) => {
      const events = await collect(openEventStream(server.url()));
      assert.equal(events.length, 10);
      assert.deepEqual(events[0], {
        id: '1',
        event: 'message',
        data: '{"msg": "hello", "idx": 1}',
      });
      const h = server.requests[0]!.headers;
      assert.equal(h.accept, 'text/event-stream');
      assert.equal(h['cache-control'], 'no-cache');
      assert.equal(h['last-event-id'], undefined);
    });
  });

  test('sends headers and the initial Last-Event-ID (UTF-8 bytes on the wire)', async () => {
    await withServer(exampleStream, async (server) => {
      await collect(
        openEventStream(server.url('/s?q=1'), { headers: { 'X-Token': 'abc' }, lastEventId: 'é7' }),
      );
      const seen = server.requests[0]!;
      assert.equal(seen.url, '/s?q=1');
      assert.equal(seen.headers['x-token'], 'abc');
      assert.equal(
        Buffer.from(seen.headers['last-event-id'] as string, 'latin1').toString('utf8'),
        'é7',
      );
    });
  });

  test('break stops the stream; events arrive while the stream is open', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.write(exampleEvent(1)); // then hold the stream open
      },
      async (server) => {
        for await (const e of openEventStream(server.url())) {
          assert.equal(e.id, '1');
          break;
        }
      },
    );
  });

  test('the signal ends the iteration quietly', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.write(exampleEvent(1));
      },
      async (server) => {
        const ac = new AbortController();
        const seen: SseEvent[] = [];
        for await (const e of openEventStream(server.url(), { signal: ac.signal })) {
          seen.push(e);
          ac.abort();
        }
        assert.equal(seen.length, 1);
      },
    );
  });

  test('throws SseClientError for refused, bad status and bad Content-Type', async () => {
    const port = await freePort();
    await assert.rejects(collect(openEventStream(`http://127.0.0.1:${port}/x`)), (err: unknown) => {
      assert.ok(err instanceof SseClientError);
      assert.equal(err.reason, 'refused');
      assert.equal(err.url, `http://127.0.0.1:${port}/x`);
      return true;
    });
    await withServer(
      (req, res) => {
        if (req.url === '/500') res.writeHead(500).end('boom');
        else res.writeHead(200, { 'content-type': 'text/html' }).end('<p>hi</p>');
      },
      async (server) => {
        await assert.rejects(collect(openEventStream(server.url('/500'))), {
          name: 'SseClientError',
          reason: 'http_status',
          status: 500,
        });
        await assert.rejects(collect(openEventStream(server.url('/html'))), {
          reason: 'content_type',
        });
      },
    );
  });

  test('a Content-Type with parameters and odd case is accepted', async () => {
    await withServer(
      (_req, res) => {
        res
          .writeHead(200, { 'content-type': 'Text/Event-Stream; charset=utf-8' })
          .end('data: a\n\n');
      },
      async (server) => {
        assert.deepEqual(await collect(openEventStream(server.url())), [
          { id: '', event: 'message', data: 'a' },
        ]);
      },
    );
  });

  test('204 ends the iteration without events', async () => {
    await withServer(
      (_req, res) => res.writeHead(204).end(),
      async (server) => {
        const it = openEventStream(server.url(), { reconnect: true, retryMs: 10 });
        assert.deepEqual(await collect(it), []);
        assert.equal(it.result?.reason, 'no_content');
        assert.equal(server.requests.length, 1);
      },
    );
  });
});

describe('connectEventStream (callbacks) and reconnection', () => {
  test('reconnects with Last-Event-ID after a mid-stream drop, honours retry:, stops on 204', async () => {
    await withServer(
      (req, res, n) => {
        if (n === 1) {
          res.writeHead(200, SSE_HEADERS);
          res.write(`retry: 20\n\n${exampleEvent(1)}${exampleEvent(2)}data: partial`);
          setTimeout(() => res.socket?.destroy(), 20); // drop mid-event, no chunked terminator
        } else if (n === 2) {
          assert.equal(req.headers['last-event-id'], '2');
          res.writeHead(200, SSE_HEADERS);
          res.end(`${exampleEvent(3)}data: no id\n\n`); // clean end: reconnect again
        } else {
          res.writeHead(204).end();
        }
      },
      async (server) => {
        const events: SseEvent[] = [];
        const reconnects: { delayMs: number; lastEventId: string }[] = [];
        const errors: string[] = [];
        const opens: string[] = [];
        const retries: number[] = [];
        const handle = connectEventStream(server.url(), {
          reconnect: true,
          retryMs: 60_000, // replaced by the server's retry: 20
          onEvent: (e) => events.push({ ...e }),
          onOpen: (info) => opens.push(info.lastEventId),
          onError: (err, willRetry) => errors.push(`${err.reason}:${willRetry}`),
          onReconnect: (info) =>
            reconnects.push({ delayMs: info.delayMs, lastEventId: info.lastEventId }),
          onRetry: (ms) => retries.push(ms),
        });
        const result = await handle.done;
        assert.equal(result.reason, 'no_content');
        assert.deepEqual(
          events.map((e) => `${e.id}/${e.data}`),
          [
            '1/{"msg": "hello", "idx": 1}',
            '2/{"msg": "hello", "idx": 2}',
            '3/{"msg": "hello", "idx": 3}',
            '3/no id',
          ],
        );
        assert.deepEqual(retries, [20]);
        assert.deepEqual(errors, ['network:true']);
        assert.deepEqual(reconnects, [
          { delayMs: 20, lastEventId: '2' },
          { delayMs: 20, lastEventId: '3' },
        ]);
        assert.deepEqual(opens, ['', '2']);
        assert.equal(server.requests[2]!.headers['last-event-id'], '3');
        assert.equal(result.lastEventId, '3');
      },
    );
  });

  test('with reconnect, a non-200 status fails the connection for good (no retry)', async () => {
    await withServer(
      (_req, res, n) => {
        if (n === 1) {
          res.writeHead(200, SSE_HEADERS);
          res.end(exampleEvent(1));
        } else res.writeHead(503).end();
      },
      async (server) => {
        const errors: string[] = [];
        const handle = connectEventStream(server.url(), {
          reconnect: true,
          retryMs: 5,
          onEvent: () => {},
          onError: (err, willRetry) => errors.push(`${err.reason}:${err.status}:${willRetry}`),
        });
        const result = await handle.done;
        assert.equal(result.reason, 'error');
        assert.equal(result.error?.reason, 'http_status');
        assert.deepEqual(errors, ['http_status:503:false']);
        assert.equal(server.requests.length, 2);
      },
    );
  });

  test('with reconnect, refused connections are retried with backoff', async () => {
    const port = await freePort();
    const reconnects: number[] = [];
    const handle = connectEventStream(`http://127.0.0.1:${port}/sse`, {
      reconnect: true,
      retryMs: 5,
      maxBackoffMs: 40,
      onEvent: () => {},
      onReconnect: (info) => reconnects.push(info.attempt),
    });
    while (reconnects.length < 3) await new Promise((r) => setTimeout(r, 5));
    handle.close();
    const result = await handle.done;
    assert.equal(result.reason, 'closed');
    assert.deepEqual(reconnects.slice(0, 3), [2, 3, 4]);
  });

  test('idle timeout: no bytes for timeoutMs is a dead connection', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.write(exampleEvent(1)); // then silence
      },
      async (server) => {
        const events: SseEvent[] = [];
        const result = await connectEventStream(server.url(), {
          timeoutMs: 200,
          onEvent: (e) => events.push(e),
        }).done;
        assert.equal(events.length, 1);
        assert.equal(result.reason, 'error');
        assert.equal(result.error?.reason, 'timeout');
      },
    );
  });

  test('heartbeat comments keep an idle-timed stream alive', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        let beats = 0;
        const timer = setInterval(() => {
          beats++;
          if (beats < 15) res.write(': ping\n\n');
          else {
            clearInterval(timer);
            res.end('data: done\n\n');
          }
        }, 100);
        res.on('close', () => clearInterval(timer));
      },
      async (server) => {
        // 1.5 s of heartbeats only: without them the 400 ms idle timeout would fire (by ~1 s).
        const events: SseEvent[] = [];
        const result = await connectEventStream(server.url(), {
          timeoutMs: 400,
          onEvent: (e) => events.push(e),
        }).done;
        assert.equal(result.reason, 'end');
        assert.deepEqual(
          events.map((e) => e.data),
          ['done'],
        );
      },
    );
  });

  test('an event larger than maxEventBytes fails the stream, even with reconnect', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.write(exampleEvent(1));
        const timer = setInterval(() => res.write('x'.repeat(1024)), 5); // a line that never ends
        res.on('close', () => clearInterval(timer));
        res.write('data: ');
      },
      async (server) => {
        const result: CloseResult = await connectEventStream(server.url(), {
          reconnect: true,
          retryMs: 5,
          maxEventBytes: 16 * 1024,
          onEvent: () => {},
        }).done;
        assert.equal(result.reason, 'error');
        assert.equal(result.error?.reason, 'too_large');
        assert.match(result.error!.message, /maxEventBytes limit of 16384/);
        assert.equal(server.requests.length, 1);
      },
    );
  });

  test('close() from inside onEvent stops further events of the same chunk', async () => {
    await withServer(exampleStream, async (server) => {
      const events: SseEvent[] = [];
      const handle = connectEventStream(server.url(), {
        onEvent(e) {
          events.push(e);
          if (events.length === 3) handle.close();
        },
      });
      assert.equal((await handle.done).reason, 'closed');
      assert.equal(events.length, 3);
    });
  });

  test('an aborted signal before the start closes at once', async () => {
    const result = await connectEventStream('http://127.0.0.1:9/never', {
      signal: AbortSignal.abort(),
      onEvent: () => {},
    }).done;
    assert.equal(result.reason, 'closed');
  });

  test('many concurrent streams on one process', async () => {
    await withServer(exampleStream, async (server) => {
      let count = 0;
      const handles = Array.from({ length: 200 }, () =>
        connectEventStream(server.url(), {
          onEvent: () => {
            count++;
          },
        }),
      );
      const results = await Promise.all(handles.map((h) => h.done));
      assert.ok(results.every((r) => r.reason === 'end'));
      assert.equal(count, 2000);
    });
  });
});
