// The CLI as a real process: output formats, streaming, exit codes, options and signals.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort } from '../../services/shared/free-port.ts';
import { runClient, spawnClient } from '../helpers/client-process.ts';
import { ROOT } from '../helpers/process.ts';
import {
  exampleEvent,
  exampleLine,
  type Handler,
  SSE_HEADERS,
  type StubServer,
  startStub,
} from '../helpers/stub-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'sse-client-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function withServer<T>(handler: Handler, fn: (server: StubServer) => Promise<T>): Promise<T> {
  const server = await startStub(handler);
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

const example: Handler = (_req, res) => {
  res.writeHead(200, SSE_HEADERS);
  for (let n = 1; n <= 10; n++) res.write(exampleEvent(n));
  res.end();
};

/** A stream that sends one event and then holds the connection open. */
const holdOpen: Handler = (_req, res) => {
  res.writeHead(200, SSE_HEADERS);
  res.write(exampleEvent(1));
};

const EXPECTED_TEXT = `${Array.from({ length: 10 }, (_, i) => exampleLine(i + 1)).join('\n')}\nSSE stream finished\n`;

describe('CLI output', () => {
  test('text: one line per event, then "SSE stream finished", exit 0', async () => {
    await withServer(example, async (server) => {
      const r = await runClient(['--url', server.url()]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, EXPECTED_TEXT);
      assert.equal(r.stderr, '');
    });
  });

  test('SSE_URL sets the URL; --url wins over it', async () => {
    await withServer(example, async (server) => {
      const r = await runClient([], { SSE_URL: server.url('/from-env') });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, EXPECTED_TEXT);
      const port = await freePort();
      const r2 = await runClient(['--url', server.url('/from-flag')], {
        SSE_URL: `http://127.0.0.1:${port}/nothing`,
      });
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(
        server.requests.map((q) => q.url),
        ['/from-env', '/from-flag'],
      );
    });
  });

  test('the URL as a positional argument; the same URL in both forms is accepted', async () => {
    await withServer(example, async (server) => {
      const r = await runClient([server.url('/positional')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, EXPECTED_TEXT);
      const both = await runClient(['--url', server.url('/both'), server.url('/both')]);
      assert.equal(both.code, 0, both.stderr);
      assert.deepEqual(
        server.requests.map((q) => q.url),
        ['/positional', '/both'],
      );
    });
  });

  test('a positional URL and a different --url: usage error naming both, exit 2', async () => {
    const r = await runClient(['--url', 'http://127.0.0.1:1/a', 'http://127.0.0.1:1/b']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^sse-client: the URL argument "http:\/\/127.0.0.1:1\/b" and --url/);
  });

  test('--json: stdout carries only JSON objects, the rest goes to stderr', async () => {
    await withServer(example, async (server) => {
      const r = await runClient(['--url', server.url(), '--json']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 10);
      lines.forEach((line, i) => {
        assert.deepEqual(JSON.parse(line), {
          id: String(i + 1),
          event: 'message',
          data: `{"msg": "hello", "idx": ${i + 1}}`,
        });
      });
      assert.equal(r.stderr, 'SSE stream finished\n');
    });
  });

  test('--json: an event without id has id "" and a custom type is kept', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.end('event: tick\ndata: a\ndata: b\n\n');
      },
      async (server) => {
        const r = await runClient(['--url', server.url(), '--json']);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), { id: '', event: 'tick', data: 'a\nb' });
      },
    );
  });

  test('each event is printed while the stream is still open', async () => {
    await withServer(holdOpen, async (server) => {
      const client = spawnClient(['--url', server.url()]);
      try {
        const lines = await client.waitForLines(1);
        assert.equal(lines[0], exampleLine(1));
        assert.equal(client.child.exitCode, null);
      } finally {
        client.kill('SIGKILL');
        await client.exited;
      }
    });
  });

  test('--max-events N stops after N events with exit 0', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        for (let n = 1; n <= 3; n++) res.write(exampleEvent(n)); // and keep the stream open
      },
      async (server) => {
        const r = await runClient(['--url', server.url(), '--max-events', '2']);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.trimEnd().split('\n'), [exampleLine(1), exampleLine(2)]);
      },
    );
  });

  test('--last-event-id and --header are sent; config headers too', async () => {
    await withServer(example, async (server) => {
      const config = join(dir, 'headers.yaml');
      writeFileSync(config, 'headers:\n  X-From-Config: yes\n  X-Both: config\n');
      const r = await runClient([
        '--url',
        server.url(),
        '--config',
        config,
        '--last-event-id',
        '42',
        '--header',
        'Authorization: Bearer t0k',
        '--header',
        'x-both: flag',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const h = server.requests[0]!.headers;
      assert.equal(h['last-event-id'], '42');
      assert.equal(h.authorization, 'Bearer t0k');
      assert.equal(h['x-from-config'], 'yes');
      assert.equal(h['x-both'], 'flag');
      assert.equal(h.accept, 'text/event-stream');
    });
  });

  test('204 without --reconnect: "SSE stream finished", exit 0', async () => {
    await withServer(
      (_req, res) => res.writeHead(204).end(),
      async (server) => {
        const r = await runClient(['--url', server.url()]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'SSE stream finished\n');
      },
    );
  });
});

describe('CLI errors and exit codes', () => {
  test('connection refused: one stderr line naming the URL, exit 1', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/sse/test`;
    const r = await runClient(['--url', url]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.includes(url), r.stderr);
    assert.match(lines[0]!, /refused/);
  });

  for (const [name, handler, pattern] of [
    ['HTTP 500', ((_q, s) => s.writeHead(500).end('oops')) as Handler, /500/],
    ['HTTP 404', ((_q, s) => s.writeHead(404).end()) as Handler, /404/],
    [
      'HTTP 503 with a JSON message',
      ((_q, s) =>
        s
          .writeHead(503, { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ error: 'shutting_down', message: 'server is\nshutting down' }),
          )) as Handler,
      /HTTP status 503 Service Unavailable, expected 200: server is shutting down$/,
    ],
    [
      'HTTP 500 with a long multi-line text body',
      ((_q, s) => s.writeHead(500).end(`line one\r\nline two\n${'x'.repeat(500)}`)) as Handler,
      /HTTP status 500 Internal Server Error, expected 200: line one line two x{181}$/,
    ],
    [
      'HTTP 500 whose body never ends',
      ((_q, s) => s.writeHead(500).write('partial explanation')) as Handler,
      /HTTP status 500 Internal Server Error, expected 200: partial explanation$/,
    ],
    [
      'Content-Type text/html',
      ((_q, s) => s.writeHead(200, { 'content-type': 'text/html' }).end('<p>')) as Handler,
      /text\/html/,
    ],
  ] as const) {
    test(`${name}: one stderr line naming the URL and the cause, exit 1`, async () => {
      await withServer(handler, async (server) => {
        const r = await runClient(['--url', server.url()]);
        assert.equal(r.code, 1);
        assert.equal(r.stdout, '');
        const lines = r.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.ok(lines[0]!.includes(server.url()));
        assert.match(lines[0]!, pattern);
      });
    });
  }

  for (const args of [
    ['--bogus'],
    ['--max-events', 'x'],
    ['--max-events', '0'],
    ['--timeout-ms', '1.5'],
    ['--metrics-port', '70000'],
    ['--url', 'not a url'],
    ['--url', 'ftp://example.com/'],
    ['--url'],
    ['--header', 'no colon'],
    ['--last-event-id', 'a\nb'],
    ['positional'],
    ['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'],
    ['--url', 'http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'],
    ['ftp://example.com/'],
  ]) {
    test(`bad arguments ${JSON.stringify(args)}: usage on stderr, exit 2`, async () => {
      const r = await runClient(args);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /Usage: /);
    });
  }

  test('--version prints "http-sse client <package.json version>", exit 0', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const r = await runClient(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `http-sse client ${version}\n`);
    assert.equal(r.stderr, '');
  });

  test('--help prints usage on stdout, exit 0', async () => {
    const r = await runClient(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--max-events N/);
  });

  test('bad config values: one line naming file, key and value, exit 2', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'url: http://127.0.0.1:1/x\nretryMs: -5\n');
    const r = await runClient(['--config', file]);
    assert.equal(r.code, 2);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /retryMs = -5/);
    assert.ok(lines[0]!.includes('bad.yaml'));

    const env = await runClient([], { SSE_CLIENT_TIMEOUT_MS: 'soon' });
    assert.equal(env.code, 2);
    assert.match(
      env.stderr,
      /timeoutMs = "soon" \(from environment variable SSE_CLIENT_TIMEOUT_MS\)/,
    );
    assert.equal(env.stderr.trimEnd().split('\n').length, 1);

    writeFileSync(file, 'urll: x\n');
    const unknown = await runClient(['--config', file]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /urll/);

    const missing = await runClient(['--config', join(dir, 'missing.yaml')]);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trimEnd().split('\n').length, 1);
  });

  test('SIGINT stops cleanly with exit 130; SIGTERM with 143', async () => {
    await withServer(holdOpen, async (server) => {
      for (const [signal, code] of [
        ['SIGINT', 130],
        ['SIGTERM', 143],
      ] as const) {
        const client = spawnClient(['--url', server.url()]);
        await client.waitForLines(1);
        client.kill(signal);
        assert.equal(await client.exited, code);
        assert.equal(client.stderr(), '');
      }
    });
  });

  test('--timeout-ms: a silent stream is dead after N ms (exit 1, timeout)', async () => {
    await withServer(holdOpen, async (server) => {
      const r = await runClient(['--url', server.url(), '--timeout-ms', '300']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, `${exampleLine(1)}\n`);
      assert.match(r.stderr, /timeout/);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1);
    });
  });

  test('a peer that never ends a line: error naming the limit, exit 1', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.write('data: ');
        const timer = setInterval(() => res.write('x'.repeat(4096)), 2);
        res.on('close', () => clearInterval(timer));
      },
      async (server) => {
        const r = await runClient(['--url', server.url()], { SSE_CLIENT_MAX_EVENT_BYTES: '65536' });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /maxEventBytes limit of 65536/);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1);
      },
    );
  });
});

describe('CLI --reconnect', () => {
  test('reconnects with Last-Event-ID after a drop, honours retry:, stops on 204 with exit 0', async () => {
    await withServer(
      (_req, res, n) => {
        if (n === 1) {
          res.writeHead(200, SSE_HEADERS);
          res.write(`retry: 50\n${exampleEvent(1)}${exampleEvent(2)}`);
          setTimeout(() => res.socket?.destroy(), 30);
        } else if (n === 2) {
          res.writeHead(200, SSE_HEADERS);
          res.end(exampleEvent(3));
        } else res.writeHead(204).end();
      },
      async (server) => {
        // retryMs from the environment is long: only the server's retry: 50 lets this finish.
        const r = await runClient(['--url', server.url(), '--reconnect'], {
          SSE_CLIENT_RETRY_MS: '600000',
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          r.stdout,
          `${exampleLine(1)}\n${exampleLine(2)}\n${exampleLine(3)}\nSSE stream finished\n`,
        );
        assert.deepEqual(
          server.requests.map((q) => q.headers['last-event-id']),
          [undefined, '2', '3'],
        );
      },
    );
  });

  test('--reconnect with --json keeps stdout to events only', async () => {
    await withServer(
      (_req, res, n) => {
        if (n === 1) {
          res.writeHead(200, SSE_HEADERS);
          res.end(`retry: 10\n${exampleEvent(1)}`);
        } else res.writeHead(204).end();
      },
      async (server) => {
        const r = await runClient(['--url', server.url(), '--reconnect', '--json']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trimEnd().split('\n').length, 1);
        assert.equal(JSON.parse(r.stdout).id, '1');
        assert.match(r.stderr, /SSE stream finished/);
      },
    );
  });

  test('non-200 with --reconnect fails for good: exit 1, no retry', async () => {
    await withServer(
      (_req, res, n) => {
        if (n === 1) {
          res.writeHead(200, SSE_HEADERS);
          res.end(`retry: 10\n${exampleEvent(1)}`);
        } else res.writeHead(500).end();
      },
      async (server) => {
        const r = await runClient(['--url', server.url(), '--reconnect']);
        assert.equal(r.code, 1);
        assert.equal(server.requests.length, 2);
        assert.match(r.stderr.trimEnd().split('\n').at(-1)!, /500/);
      },
    );
  });

  test('wrong Content-Type with --reconnect fails for good: exit 1', async () => {
    await withServer(
      (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'),
      async (server) => {
        const r = await runClient(['--url', server.url(), '--reconnect']);
        assert.equal(r.code, 1);
        assert.equal(server.requests.length, 1);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1);
      },
    );
  });

  test('SIGINT during the reconnection wait exits 130', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS);
        res.end(`retry: 600000\n${exampleEvent(1)}`);
      },
      async (server) => {
        const client = spawnClient(['--url', server.url(), '--reconnect']);
        await client.waitForLines(1);
        while (!client.stderr().includes('reconnecting'))
          await new Promise((r) => setTimeout(r, 10));
        client.kill('SIGINT');
        assert.equal(await client.exited, 130);
      },
    );
  });
});
