// publish(): the request it sends, which answers it retries (always with the same Idempotency-Key)
// and which it does not, the backoff (injected sleep and random: no wall-clock assertions), local
// argument checks and aborting. Against small node:http stubs on 127.0.0.1.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import {
  closeDefaultDispatchers,
  PublishError,
  type PublishOptions,
  publish,
} from '../../services/client/src/index.ts';
import { parseRetryAfter, retryDelay } from '../../services/client/src/retry-delay.ts';
import { type StubServer, startStub } from '../helpers/stub-server.ts';

after(() => closeDefaultDispatchers());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type Reply = (req: IncomingMessage, res: ServerResponse, n: number) => unknown;

interface Stub extends StubServer {
  /** The request bodies, in order. */
  bodies: string[];
  base: string;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function json(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const ok = (res: ServerResponse, headers = {}) =>
  json(res, 202, { ids: ['1700000000000-0'], subscribers: 3 }, headers);

const unavailable = (res: ServerResponse, retryAfter = '2') =>
  json(
    res,
    503,
    { error: 'broker_unavailable', message: 'the event broker is unreachable', outcome: 'unknown' },
    { 'retry-after': retryAfter },
  );

/** A stub whose `reply` answers each request after its body was read. */
async function withStub(reply: Reply, fn: (stub: Stub) => Promise<void>): Promise<void> {
  const bodies: string[] = [];
  const server = await startStub(async (req, res, n) => {
    bodies.push(await readBody(req));
    await reply(req, res, n);
  });
  try {
    await fn(Object.assign(server, { bodies, base: server.url('') }));
  } finally {
    await server.close();
  }
}

/** Options with a recording, instant sleep and a fixed jitter. */
function recorded(extra: PublishOptions = {}): { options: PublishOptions; waits: number[] } {
  const waits: number[] = [];
  const options: PublishOptions = {
    random: () => 0.5,
    sleep: async (ms) => {
      waits.push(ms);
    },
    ...extra,
  };
  return { options, waits };
}

/** The PublishError a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<PublishError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof PublishError, `expected a PublishError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected publish() to fail');
}

function keysOf(stub: Stub): unknown[] {
  return stub.requests.map((r) => r.headers['idempotency-key']);
}

describe('publish', () => {
  test('success: POST JSON with the token and a fresh UUID key, the answer as the result', async () => {
    await withStub(
      (_req, res) => ok(res),
      async (stub) => {
        const result = await publish(
          stub.base,
          'news',
          { event: 'update', data: { a: 1 } },
          {
            token: 's3cret',
          },
        );
        assert.deepEqual(result, {
          status: 202,
          ids: ['1700000000000-0'],
          subscribers: 3,
          replayed: false,
          attempts: 1,
          idempotencyKey: result.idempotencyKey,
        });
        assert.match(result.idempotencyKey, UUID);
        const seen = stub.requests[0]!;
        assert.equal(seen.url, '/channels/news/events');
        assert.equal(seen.headers['content-type'], 'application/json');
        assert.equal(seen.headers.authorization, 'Bearer s3cret');
        assert.equal(seen.headers['idempotency-key'], result.idempotencyKey);
        assert.deepEqual(JSON.parse(stub.bodies[0]!), { event: 'update', data: { a: 1 } });

        // A new call gets a new key; a batch is sent as an array; a base path is kept.
        const again = await publish(`${stub.base}/api/`, 'a.b:c-d_e', [
          { data: 'x' },
          { data: 'y' },
        ]);
        assert.notEqual(again.idempotencyKey, result.idempotencyKey);
        assert.equal(stub.requests[1]!.url, '/api/channels/a.b:c-d_e/events');
        assert.equal(stub.requests[1]!.headers.authorization, undefined);
        assert.deepEqual(JSON.parse(stub.bodies[1]!), [{ data: 'x' }, { data: 'y' }]);
      },
    );
  });

  test('503 then 202: retried with the same key and the same body', async () => {
    await withStub(
      (_req, res, n) => (n < 3 ? unavailable(res) : ok(res)),
      async (stub) => {
        const { options, waits } = recorded({ idempotencyKey: 'order-42' });
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.equal(result.attempts, 3);
        assert.equal(result.idempotencyKey, 'order-42');
        assert.deepEqual(keysOf(stub), ['order-42', 'order-42', 'order-42']);
        assert.equal(new Set(stub.bodies).size, 1);
        assert.equal(waits.length, 2);
      },
    );
  });

  test('the generated key is reused on every retry', async () => {
    await withStub(
      (_req, res, n) => (n === 1 ? unavailable(res) : ok(res)),
      async (stub) => {
        const { options } = recorded();
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.match(result.idempotencyKey, UUID);
        assert.deepEqual(keysOf(stub), [result.idempotencyKey, result.idempotencyKey]);
      },
    );
  });

  test('Retry-After is a lower bound on the wait, capped by maxDelayMs', async () => {
    await withStub(
      (_req, res, n) =>
        n === 1 ? unavailable(res, '7') : n === 2 ? unavailable(res, '120') : ok(res),
      async (stub) => {
        const { options, waits } = recorded({ random: () => 0, maxDelayMs: 60_000 });
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.equal(result.attempts, 3);
        assert.deepEqual(waits, [7000, 60_000]);
      },
    );
  });

  test('429 is retried, honouring Retry-After', async () => {
    await withStub(
      (_req, res, n) =>
        n === 1
          ? json(
              res,
              429,
              { error: 'too_many_requests', message: 'slow down' },
              { 'retry-after': '3' },
            )
          : ok(res),
      async (stub) => {
        const { options, waits } = recorded({ random: () => 0 });
        assert.equal((await publish(stub.base, 'news', { data: 'hi' }, options)).attempts, 2);
        assert.deepEqual(waits, [3000]);
      },
    );
  });

  test('409 in flight, then the first answer replayed: replayed = true', async () => {
    await withStub(
      (_req, res, n) =>
        n === 1
          ? json(
              res,
              409,
              { error: 'idempotency_key_in_flight', message: 'still publishing' },
              { 'retry-after': '1' },
            )
          : ok(res, { 'idempotent-replayed': 'true' }),
      async (stub) => {
        const { options, waits } = recorded({ random: () => 0, idempotencyKey: 'k1' });
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.equal(result.replayed, true);
        assert.equal(result.attempts, 2);
        assert.deepEqual(result.ids, ['1700000000000-0']);
        assert.deepEqual(waits, [1000]);
        assert.deepEqual(keysOf(stub), ['k1', 'k1']);
      },
    );
  });

  for (const [status, body] of [
    [422, { error: 'idempotency_key_reused', message: 'the key was used with another body' }],
    [400, { error: 'bad_request', message: 'body.data is required' }],
    [401, { error: 'unauthorized', message: 'a valid publish token is required' }],
    [409, { error: 'conflict', message: 'some other conflict' }],
    [500, { error: 'internal', message: 'boom' }],
  ] as const) {
    test(`${status} ${body.error} is final: not retried`, async () => {
      await withStub(
        (_req, res) => json(res, status, body, { 'retry-after': '1' }),
        async (stub) => {
          const { options, waits } = recorded({ idempotencyKey: 'final-key' });
          const err = await failure(publish(stub.base, 'news', { data: 'hi' }, options));
          assert.equal(err.reason, 'http_status');
          assert.equal(err.status, status);
          assert.equal(err.code, body.error);
          assert.equal(err.serverMessage, body.message);
          assert.equal(err.attempts, 1);
          assert.equal(err.idempotencyKey, 'final-key');
          assert.equal(err.fatal, true);
          assert.match(err.message, new RegExp(`^HTTP status ${status} .*: ${body.message} \\(`));
          assert.equal(stub.requests.length, 1);
          assert.deepEqual(waits, []);
        },
      );
    });
  }

  test('a network error (the server closes the socket) is retried with the same key', async () => {
    await withStub(
      (req, res, n) => (n === 1 ? req.socket.destroy() : ok(res)),
      async (stub) => {
        const { options, waits } = recorded();
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.equal(result.attempts, 2);
        assert.equal(waits.length, 1);
        assert.deepEqual(keysOf(stub), [result.idempotencyKey, result.idempotencyKey]);
      },
    );
  });

  test('a 202 cut short is retried: the same key gets the first answer again', async () => {
    await withStub(
      (_req, res, n) => {
        if (n > 1) return ok(res, { 'idempotent-replayed': 'true' });
        res.writeHead(202, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"ids":[');
        setImmediate(() => res.destroy());
      },
      async (stub) => {
        const { options } = recorded();
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.equal(result.attempts, 2);
        assert.equal(result.replayed, true);
      },
    );
  });

  test('a connection refused is retried, then reported with reason refused', async () => {
    await withStub(
      () => {},
      async (stub) => {
        await stub.close();
        const { options, waits } = recorded({ retries: 2 });
        const err = await failure(publish(stub.base, 'news', { data: 'hi' }, options));
        assert.equal(err.reason, 'refused');
        assert.equal(err.attempts, 3);
        assert.equal(waits.length, 2);
        assert.equal(err.fatal, false);
      },
    );
  });

  test('a hung attempt times out (timeoutMs) and is retried', async () => {
    await withStub(
      (_req, res, n) => (n === 1 ? undefined : ok(res)),
      async (stub) => {
        const { options } = recorded({ timeoutMs: 200 });
        const result = await publish(stub.base, 'news', { data: 'hi' }, options);
        assert.equal(result.attempts, 2);
      },
    );
  });

  test('retries exhausted: a PublishError with the attempts, the key and the last answer', async () => {
    await withStub(
      (_req, res) => unavailable(res, '1'),
      async (stub) => {
        const { options, waits } = recorded({ retries: 2, idempotencyKey: 'later' });
        const err = await failure(publish(stub.base, 'news', { data: 'hi' }, options));
        assert.equal(err.reason, 'http_status');
        assert.equal(err.status, 503);
        assert.equal(err.code, 'broker_unavailable');
        assert.equal(err.outcome, 'unknown');
        assert.equal(err.attempts, 3);
        assert.equal(err.idempotencyKey, 'later');
        assert.equal(err.fatal, false);
        assert.match(err.message, /3 attempts, Idempotency-Key "later"/);
        assert.equal(stub.requests.length, 3);
        assert.equal(waits.length, 2);
      },
    );
  });

  test('retries: 0 sends once', async () => {
    await withStub(
      (_req, res) => unavailable(res),
      async (stub) => {
        const { options, waits } = recorded({ retries: 0 });
        assert.equal((await failure(publish(stub.base, 'news', { data: 1 }, options))).attempts, 1);
        assert.deepEqual(waits, []);
      },
    );
  });

  test('a 202 whose body is not {ids, subscribers} is a protocol error, not retried', async () => {
    await withStub(
      (_req, res) => json(res, 202, { ok: true }),
      async (stub) => {
        const { options } = recorded();
        const err = await failure(publish(stub.base, 'news', { data: 1 }, options));
        assert.equal(err.reason, 'protocol');
        assert.equal(err.status, 202);
        assert.equal(stub.requests.length, 1);
      },
    );
  });

  test('bad keys, channels and options are refused before anything is sent', async () => {
    await withStub(
      (_req, res) => ok(res),
      async (stub) => {
        const cases: [string, Parameters<typeof publish>][] = [
          ['empty key', [stub.base, 'news', { data: 1 }, { idempotencyKey: '' }]],
          [
            '129-character key',
            [stub.base, 'news', { data: 1 }, { idempotencyKey: 'k'.repeat(129) }],
          ],
          ['key with a space', [stub.base, 'news', { data: 1 }, { idempotencyKey: 'a b' }]],
          ['non-ASCII key', [stub.base, 'news', { data: 1 }, { idempotencyKey: 'clé' }]],
          ['channel with a slash', [stub.base, 'a/b', { data: 1 }]],
          ['empty channel', [stub.base, '', { data: 1 }]],
          ['129-character channel', [stub.base, 'c'.repeat(129), { data: 1 }]],
          ['non-http base', ['ftp://127.0.0.1/', 'news', { data: 1 }]],
          ['relative base', ['/channels', 'news', { data: 1 }]],
          ['negative retries', [stub.base, 'news', { data: 1 }, { retries: -1 }]],
          ['token with a line break', [stub.base, 'news', { data: 1 }, { token: 'a\nb' }]],
          ['unserializable data', [stub.base, 'news', { data: 1n }]],
        ];
        for (const [name, args] of cases) {
          const err = await failure(publish(...args));
          assert.equal(err.reason, 'invalid_argument', name);
          assert.equal(err.attempts, 0, name);
          assert.equal(err.fatal, true, name);
        }
        // The longest valid key and channel pass.
        const key = `${'~'.repeat(64)}${'!'.repeat(64)}`;
        const result = await publish(
          stub.base,
          'c'.repeat(128),
          { data: 1 },
          { idempotencyKey: key },
        );
        assert.equal(result.idempotencyKey, key);
        assert.equal(stub.requests.length, 1);
      },
    );
  });

  describe('abort', () => {
    test('an aborted signal sends nothing', async () => {
      await withStub(
        (_req, res) => ok(res),
        async (stub) => {
          const err = await failure(
            publish(stub.base, 'news', { data: 1 }, { signal: AbortSignal.abort() }),
          );
          assert.equal(err.reason, 'aborted');
          assert.equal(err.attempts, 0);
          assert.equal(stub.requests.length, 0);
        },
      );
    });

    test('aborting during the wait stops the retries', async () => {
      await withStub(
        (_req, res) => unavailable(res),
        async (stub) => {
          const ac = new AbortController();
          const options: PublishOptions = {
            signal: ac.signal,
            idempotencyKey: 'ab',
            sleep: async () => ac.abort(),
          };
          const err = await failure(publish(stub.base, 'news', { data: 1 }, options));
          assert.equal(err.reason, 'aborted');
          assert.equal(err.attempts, 1);
          assert.equal(err.idempotencyKey, 'ab');
          assert.equal(stub.requests.length, 1);
        },
      );
    });

    test('aborting interrupts the default sleep (Retry-After: 1 hour)', async () => {
      await withStub(
        (_req, res) => unavailable(res, '3600'),
        async (stub) => {
          const ac = new AbortController();
          const pending = publish(
            stub.base,
            'news',
            { data: 1 },
            { signal: ac.signal, maxDelayMs: 3_600_000 },
          );
          await stub.waitForRequests(1);
          ac.abort();
          const err = await failure(pending);
          assert.equal(err.reason, 'aborted');
          assert.equal(err.attempts, 1);
        },
      );
    });

    test('aborting a request in progress', async () => {
      await withStub(
        () => {}, // never answers
        async (stub) => {
          const ac = new AbortController();
          const pending = publish(stub.base, 'news', { data: 1 }, { signal: ac.signal });
          await stub.waitForRequests(1);
          ac.abort(new Error('user gave up'));
          const err = await failure(pending);
          assert.equal(err.reason, 'aborted');
          assert.equal(err.attempts, 1);
          assert.equal((err.cause as Error).message, 'user gave up');
        },
      );
    });
  });
});

describe('retry delays', () => {
  const backoff = (random: number) => ({
    minDelayMs: 100,
    maxDelayMs: 1000,
    random: () => random,
  });

  test('full jitter under an exponential ceiling capped by maxDelayMs', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 40].map((n) => retryDelay(n, undefined, backoff(0.999))),
      [99, 199, 399, 799, 999, 999],
    );
    assert.equal(retryDelay(3, undefined, backoff(0)), 0);
    assert.equal(retryDelay(3, undefined, backoff(0.5)), 200);
  });

  test('Retry-After is a lower bound, maxDelayMs the cap', () => {
    assert.equal(retryDelay(1, 500, backoff(0)), 500);
    assert.equal(retryDelay(1, 5000, backoff(0)), 1000);
    assert.equal(retryDelay(4, 10, backoff(0.5)), 400);
  });

  test('parseRetryAfter: delay-seconds or an HTTP-date', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter(['5', '9'], now), 5000);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    assert.equal(parseRetryAfter('-1', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('2015-10-21', now), undefined);
    assert.equal(parseRetryAfter('Wednesday, 21-Oct-15 07:28:10 GMT', now), 10_000);
  });
});
