// Private channels in real Chromium: a page on another origin reads a channel its signed token (a
// cookie, sent by EventSource withCredentials) covers, is refused one it does not, and gets
// `event: reauth` when the token expires.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../../services/shared/eventually.ts';
import { newSecret, nowSec, signToken } from '../helpers/auth-keys.ts';
import {
  launchBrowser,
  type PageOrigin,
  startPageOrigin,
  type TestBrowser,
} from '../helpers/browser.ts';
import { publish, startServer, type TestServer } from '../helpers/server.ts';

interface PageLog {
  opened: number;
  messages: string[];
  reauth: number | null;
  closed: boolean;
}

describe('private channels from a page on another origin', () => {
  const secret = newSecret();
  let browser: TestBrowser;
  let page: PageOrigin;
  let t: TestServer;

  before(async () => {
    browser = await launchBrowser();
    page = await startPageOrigin();
    t = await startServer({
      auth: { jwt: { secret } },
      cors: { allowedOrigins: [page.base], allowCredentials: true },
      retryMs: 60_000, // after reauth the page decides; no automatic reconnect during the test
    });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await page?.close();
  });

  test('the cookie opens the covered channel, a foreign one is refused, expiry sends reauth', {
    timeout: 60_000,
  }, async () => {
    const exp = nowSec() + 5;
    const token = await signToken(secret, { sse: { subscribe: ['orders.*'] }, exp }, { ttl: null });
    await browser.context.addCookies([
      { name: 'sse_token', value: token, url: t.base, httpOnly: true, sameSite: 'Lax' },
    ]);
    const tab = await browser.context.newPage();
    try {
      await tab.goto(page.base);
      await tab.evaluate((url) => {
        const log: PageLog = { opened: 0, messages: [], reauth: null, closed: false };
        (window as unknown as { log: PageLog }).log = log;
        const es = new EventSource(url, { withCredentials: true });
        es.onopen = () => {
          log.opened++;
        };
        es.onmessage = (e) => log.messages.push(e.data);
        es.addEventListener('reauth', () => {
          log.reauth = Date.now();
          es.close();
          log.closed = true;
        });
      }, `${t.base}/sse/channels/orders.eu`);
      const read = () => tab.evaluate(() => (window as unknown as { log: PageLog }).log);
      await eventually(async () => (await read()).opened === 1, 10_000, 'the stream opened');

      const publisher = await signToken(secret, { sse: { publish: ['orders.*'] } });
      const r = await publish(
        t.base,
        'orders.eu',
        { data: 'shipped' },
        {
          authorization: `Bearer ${publisher}`,
        },
      );
      assert.equal(r.status, 202);
      await eventually(async () => (await read()).messages.length === 1, 10_000, 'the event');
      assert.deepEqual((await read()).messages, ['shipped']);

      const refused = await tab.evaluate(
        async (url) =>
          new Promise<{ opened: boolean; state: number; status: number; error: string }>(
            (resolve) => {
              const es = new EventSource(url, { withCredentials: true });
              let opened = false;
              es.onopen = () => {
                opened = true;
              };
              es.onerror = async () => {
                if (es.readyState !== EventSource.CLOSED) return;
                const res = await fetch(url, { credentials: 'include' });
                const body = (await res.json()) as { error: string };
                resolve({ opened, state: es.readyState, status: res.status, error: body.error });
              };
            },
          ),
        `${t.base}/sse/channels/users.7`,
      );
      assert.deepEqual(refused, {
        opened: false,
        state: 2,
        status: 403,
        error: 'insufficient_scope',
      });

      await eventually(async () => (await read()).reauth !== null, 15_000, 'reauth at expiry');
      const at = (await read()).reauth!;
      assert.ok(at >= exp * 1000 - 50, 'not before exp');
      assert.ok(
        at <= exp * 1000 + 1500,
        `within a second of exp (+ delivery): ${at - exp * 1000} ms`,
      );
    } finally {
      await tab.close();
    }
  });
});
