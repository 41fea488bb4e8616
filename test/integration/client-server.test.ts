// The client CLI and library against the real server: the example's output end to end.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectEventStream, openEventStream } from '../../services/client/src/index.ts';
import { exampleClientLines } from '../helpers/example.ts';
import { runNode } from '../helpers/process.ts';
import {
  eventually,
  publish,
  startServer,
  subscribers,
  type TestServer,
} from '../helpers/server.ts';

const exampleLines = exampleClientLines();

describe('client CLI against the server', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ retryMs: 50 });
  });
  after(() => t.close());

  test('default output is the example, line for line', async () => {
    const r = await runNode([
      'services/client/src/main.ts',
      '--url',
      `${t.base}/sse/test?interval_ms=5`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${[...exampleLines, 'SSE stream finished'].join('\n')}\n`);
  });

  test('--json carries one object per event on stdout and nothing else', async () => {
    const r = await runNode([
      'services/client/src/main.ts',
      '--json',
      '--url',
      `${t.base}/sse/test?interval_ms=0`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines,
      Array.from({ length: 10 }, (_, n) => ({
        id: String(n),
        event: 'message',
        data: `{"msg": "hello", "idx": ${n}}`,
      })),
    );
    assert.match(r.stderr, /SSE stream finished/);
  });

  test('--reconnect resumes with Last-Event-ID and stops on the 204 at the end', async () => {
    const r = await runNode([
      'services/client/src/main.ts',
      '--reconnect',
      '--url',
      `${t.base}/sse/test?interval_ms=0&count=4`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').slice(0, 4), exampleLines.slice(0, 4));
    assert.equal(r.stdout.match(/Received SSE event/g)?.length, 4, 'no event twice');
  });

  test('--last-event-id resumes the example stream', async () => {
    const r = await runNode([
      'services/client/src/main.ts',
      '--last-event-id',
      '7',
      '--url',
      `${t.base}/sse/test?interval_ms=0`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${[...exampleLines.slice(8), 'SSE stream finished'].join('\n')}\n`);
  });

  test('a 400 from the server is one stderr line naming the URL, exit 1', async () => {
    const url = `${t.base}/sse/test?count=0`;
    const r = await runNode(['services/client/src/main.ts', '--url', url]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.includes(url), lines[0]);
    assert.match(lines[0]!, /400/);
  });
  test("a refusal's JSON message is in the error line (URL given as the positional argument)", async () => {
    const url = `${t.base}/sse/test?count=0`;
    const answer = await fetch(url);
    const { message } = (await answer.json()) as { message: string };
    assert.equal(answer.status, 400);
    const r = await runNode(['services/client/src/main.ts', url]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `sse-client: ${url}: HTTP status 400 Bad Request, expected 200: ${message}\n`,
    );
  });

  test('--version names the client and the package version', async () => {
    const r = await runNode(['services/client/src/main.ts', '--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^http-sse client \d+\.\d+\.\d+\S*\n$/);
  });
});

describe('client library against a channel', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ retryMs: 20 });
  });
  after(() => t.close());

  test('the async iterable sees published events with their ids and types', async () => {
    const ac = new AbortController();
    const got: { id: string; event: string; data: string }[] = [];
    const reading = (async () => {
      for await (const ev of openEventStream(`${t.base}/sse/channels/lib`, { signal: ac.signal })) {
        got.push({ id: ev.id, event: ev.event, data: ev.data });
        if (got.length === 2) ac.abort();
      }
    })();
    while (subscribers(t.server, 'lib') === 0) await new Promise((r) => setTimeout(r, 5));
    const r = await publish(t.base, 'lib', [
      { event: 'created', data: { a: 1 } },
      { data: 'two\nlines' },
    ]);
    await reading;
    assert.deepEqual(got, [
      { id: String(r.body.ids![0]), event: 'created', data: '{"a":1}' },
      { id: String(r.body.ids![1]), event: 'message', data: 'two\nlines' },
    ]);
  });

  test('reconnecting after a server-side cut resumes with no gap and no duplicate', async () => {
    const seen: string[] = [];
    const handle = connectEventStream(`${t.base}/sse/channels/resume`, {
      reconnect: true,
      retryMs: 20,
      onEvent(ev) {
        seen.push(ev.data);
      },
    });
    while (subscribers(t.server, 'resume') === 0) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 30; i++) {
      await publish(t.base, 'resume', { data: String(i) });
      if (i % 10 === 5) {
        // Cut every subscriber of the channel from the server side, mid-stream.
        t.server.streams.destroyAll();
      }
    }
    const deadline = Date.now() + 10_000;
    while (seen.length < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    handle.close();
    await handle.done;
    assert.deepEqual(
      seen,
      Array.from({ length: 30 }, (_, i) => String(i)),
    );
  });

  test('maxEventBytes counts UTF-8 bytes: 901 bytes pass a 1024-byte bound, 1201 bytes (401 characters) do not', async () => {
    const fits = `${'€'.repeat(150)}\n${'€'.repeat(150)}`;
    const over = `${'€'.repeat(200)}\n${'€'.repeat(200)}`;
    const seen: string[] = [];
    const handle = connectEventStream(`${t.base}/sse/channels/bytes`, {
      maxEventBytes: 1024,
      onEvent: (ev) => seen.push(ev.data),
    });
    await eventually(() => subscribers(t.server, 'bytes') > 0, 5000, 'subscriber').catch(
      (e: unknown) => {
        handle.close();
        throw e;
      },
    );
    const r = await publish(t.base, 'bytes', [{ data: fits }, { data: over }]);
    assert.equal(r.status, 202);
    const result = await handle.done;
    assert.deepEqual(seen, [fits]);
    assert.equal(result.reason, 'error');
    assert.equal(result.error?.reason, 'too_large');
    assert.match(result.error!.message, /maxEventBytes limit of 1024 bytes/);
  });
});

describe('npm run demo', () => {
  test('prints the ten events and SSE stream finished, then stops the server', async () => {
    const r = await runNode(['services/demo/run.ts'], {}, 30_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${[...exampleLines, 'SSE stream finished'].join('\n')}\n`);
  });
});
