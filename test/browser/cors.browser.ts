// Cross-origin pages in real Chromium: EventSource withCredentials and fetch from an allowed origin
// work (cookies included), from another origin the browser refuses; error answers stay readable.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import {
  launchBrowser,
  type PageOrigin,
  startPageOrigin,
  type TestBrowser,
} from '../helpers/browser.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

interface StreamOutcome {
  opened: boolean;
  data: string[];
  finalState: number;
}

/**
 * Opens an EventSource from the page; resolves with what it received once it is CLOSED, or after
 * `settleMs` (the demo stream ends after its events and then gets a 204, which closes it).
 */
function streamFromPage(
  page: Page,
  url: string,
  withCredentials: boolean,
  settleMs = 15_000,
): Promise<StreamOutcome> {
  return page.evaluate(
    ({ url, withCredentials, settleMs }) =>
      new Promise<StreamOutcome>((resolve) => {
        const es = new EventSource(url, { withCredentials });
        const out: StreamOutcome = { opened: false, data: [], finalState: -1 };
        const finish = () => {
          out.finalState = es.readyState;
          es.close();
          resolve(out);
        };
        const timer = setTimeout(finish, settleMs);
        es.onopen = () => {
          out.opened = true;
        };
        es.onmessage = (e) => out.data.push(e.data);
        es.onerror = () => {
          if (es.readyState === EventSource.CLOSED) {
            clearTimeout(timer);
            finish();
          }
        };
      }),
    { url, withCredentials, settleMs },
  );
}

describe('cross-origin pages', () => {
  let browser: TestBrowser;
  let allowed: PageOrigin;
  let other: PageOrigin;
  let t: TestServer;
  const seen: IncomingHttpHeaders[] = [];

  before(async () => {
    browser = await launchBrowser();
    allowed = await startPageOrigin();
    other = await startPageOrigin();
    t = await startServer({
      cors: { allowedOrigins: [allowed.base], allowCredentials: true },
      retryMs: 200,
    });
    t.server.http.prependListener('request', (req) => {
      seen.push(req.headers);
    });
    // A cookie for the server's site (127.0.0.1: cookies ignore the port).
    await browser.context.addCookies([
      { name: 'session', value: 'abc123', url: t.base, httpOnly: true, sameSite: 'Lax' },
    ]);
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await allowed?.close();
    await other?.close();
  });

  test('withCredentials from an allowed origin receives the stream and sends the cookie', {
    timeout: 60_000,
  }, async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(allowed.base);
      seen.length = 0;
      const out = await streamFromPage(page, `${t.base}/sse/test?interval_ms=0`, true);
      assert.equal(out.opened, true);
      assert.equal(out.data.length, 10);
      assert.equal(out.finalState, 2, 'CLOSED after the 204');
      const streamRequests = seen.filter((h) => h.accept === 'text/event-stream');
      assert.ok(streamRequests.length >= 2, 'the first request and the one after the end');
      for (const h of streamRequests) {
        assert.equal(h.origin, allowed.base);
        assert.match(String(h.cookie), /session=abc123/);
      }
      assert.equal(streamRequests.at(-1)!['last-event-id'], '9');
    } finally {
      await page.close();
    }
  });

  test('withCredentials from another origin is refused by the browser', {
    timeout: 60_000,
  }, async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(other.base);
      const out = await streamFromPage(page, `${t.base}/sse/test?interval_ms=0`, true);
      assert.equal(out.opened, false);
      assert.deepEqual(out.data, []);
      assert.equal(out.finalState, 2, 'CLOSED: a CORS failure is fatal');
      const fetched = await page.evaluate(async (url) => {
        try {
          await fetch(url, { credentials: 'include' });
          return 'read';
        } catch {
          return 'refused';
        }
      }, `${t.base}/sse/test?interval_ms=0`);
      assert.equal(fetched, 'refused');
    } finally {
      await page.close();
    }
  });

  test('error answers are readable by an allowed page (status and JSON body)', {
    timeout: 60_000,
  }, async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(allowed.base);
      const answers = await page.evaluate(async (base) => {
        const read = async (path: string, init?: RequestInit) => {
          const res = await fetch(`${base}${path}`, { credentials: 'include', ...init });
          return { status: res.status, body: (await res.json()) as { error: string } };
        };
        return [
          await read('/sse/test?count=0'),
          await read('/sse/channels/bad%20name'),
          await read('/sse/nope'),
          await read('/channels/news/events', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'Last-Event-ID': 'x' },
            body: '{"nope": 1}',
          }),
        ];
      }, t.base);
      assert.deepEqual(
        answers.map((a) => [a.status, a.body.error]),
        [
          [400, 'bad_request'],
          [400, 'bad_request'],
          [404, 'not_found'],
          [400, 'bad_request'],
        ],
      );
    } finally {
      await page.close();
    }
  });
});
