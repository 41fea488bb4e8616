// The viewer page in real Chromium: the demo stream, a channel (publish, cut, resume without a
// gap, restart and reset), recovery from a refusal at maxConnections, and awkward event data.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import {
  launchBrowser,
  shownEvents,
  type TestBrowser,
  waitForEvents,
  waitForState,
  watchErrors,
} from '../helpers/browser.ts';
import { ROOT, type ServerProcess, spawnServer } from '../helpers/process.ts';
import { publish, Subscriber, startServer, type TestServer } from '../helpers/server.ts';

const TOKEN = 'browser-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const RESULTS = join(ROOT, 'test-results');

let browser: TestBrowser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

async function openViewer(base: string, query = ''): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  const res = await page.goto(`${base}/${query}`);
  assert.equal(res?.status(), 200);
  const csp = res?.headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  return { page, errors };
}

/** Connects the viewer to a channel and waits until the stream is open. */
async function connectChannel(page: Page, channel: string, names = ''): Promise<void> {
  await page.getByLabel('A channel').check();
  await page.locator('#channel').fill(channel);
  if (names) await page.getByLabel('Named events').fill(names);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await waitForState(page, 'open');
}

describe('the viewer on /sse/test', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('shows the ten events, then CLOSED after the 204', { timeout: 60_000 }, async () => {
    const { page, errors } = await openViewer(t.base);
    try {
      assert.equal(await page.locator('#state').textContent(), 'idle');
      await page.getByLabel('Interval (ms)').fill('20');
      // Keyboard only: focus Connect and press Enter.
      await page.getByRole('button', { name: 'Connect', exact: true }).focus();
      await page.keyboard.press('Enter');
      await waitForEvents(page, 10);
      await mkdir(RESULTS, { recursive: true });
      await page.screenshot({ path: join(RESULTS, 'viewer.png'), fullPage: true });
      // The stream ends after event 9; the EventSource comes back with Last-Event-ID: 9, gets the
      // 204 and closes for good.
      await waitForState(page, 'closed', 30_000);
      const events = await shownEvents(page);
      assert.deepEqual(
        events.map((e) => e.id),
        ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      );
      assert.ok(events.every((e) => e.event === 'message'));
      assert.equal(await page.locator('#count-out').textContent(), '10');
      assert.equal(await page.locator('#last-id').textContent(), '9');
      assert.equal(await page.locator('#reconnects').textContent(), '1');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
});

describe('the viewer on a phone-sized screen', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('fits 360 px without sideways scrolling; every control has a label', {
    timeout: 60_000,
  }, async () => {
    const { page } = await openViewer(t.base);
    try {
      await page.setViewportSize({ width: 360, height: 740 });
      await page.getByLabel('Interval (ms)').fill('0');
      await page.getByRole('button', { name: 'Connect', exact: true }).click();
      await waitForEvents(page, 10);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `page is ${width} px wide`);
      const unlabeled = await page.$$eval('input, textarea', (els) =>
        els
          .filter((el) => (el as HTMLInputElement).labels?.length === 0)
          .map((el) => el.id || el.outerHTML),
      );
      assert.deepEqual(unlabeled, []);
    } finally {
      await page.close();
    }
  });
});

describe('the viewer on a channel', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ retryMs: 300, publish: { token: TOKEN } });
  });
  after(() => t.close());

  test('published events appear; after a cut the page resumes with no gap', {
    timeout: 60_000,
  }, async () => {
    const { page, errors } = await openViewer(t.base);
    try {
      await connectChannel(page, 'news');
      // The publish form, with the token.
      await page.getByLabel('Data').fill('from the form');
      await page.getByLabel('Publish token').fill(TOKEN);
      await page.getByRole('button', { name: 'Publish' }).click();
      await waitForEvents(page, 1);
      assert.match(String(await page.locator('#publish-result').textContent()), /^published: ids /);
      const published: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await publish(t.base, 'news', { data: `before ${i}` }, AUTH);
        assert.equal(r.status, 202);
        published.push(...(r.body.ids ?? []));
      }
      await waitForEvents(page, 4);
      // The server cuts every stream; events published meanwhile must arrive after the resume.
      t.server.streams.destroyAll();
      for (let i = 0; i < 3; i++) {
        const r = await publish(t.base, 'news', { data: `during ${i}` }, AUTH);
        published.push(...(r.body.ids ?? []));
      }
      await waitForEvents(page, 7);
      await waitForState(page, 'open');
      const r = await publish(t.base, 'news', { data: 'after' }, AUTH);
      published.push(...(r.body.ids ?? []));
      await waitForEvents(page, 8);
      const events = await shownEvents(page);
      assert.deepEqual(
        events.map((e) => e.data),
        [
          'from the form',
          'before 0',
          'before 1',
          'before 2',
          'during 0',
          'during 1',
          'during 2',
          'after',
        ],
      );
      assert.deepEqual(
        events.slice(1).map((e) => e.id),
        published,
      );
      assert.ok(Number(await page.locator('#reconnects').textContent()) >= 1);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test('multi-line, unicode and 60 KB events arrive intact', { timeout: 60_000 }, async () => {
    const { page } = await openViewer(t.base);
    try {
      await connectChannel(page, 'data', 'note');
      const big = 'abcdefghij'.repeat(6 * 1024);
      const sent = [
        { event: 'note', data: 'line one\nline two\n\nline four after an empty one' },
        { data: 'héllo wörld — 日本語 — Ελληνικά — 🎉🚀 — \u2028 — שלום' },
        { data: `${big}` },
        { data: '  leading spaces, a colon: and data: inside ' },
      ];
      for (const body of sent) {
        const r = await publish(t.base, 'data', body, AUTH);
        assert.equal(r.status, 202, JSON.stringify(r.body));
      }
      await waitForEvents(page, sent.length);
      const events = await shownEvents(page);
      assert.deepEqual(
        events.map((e) => e.event),
        ['note', 'message', 'message', 'message'],
      );
      assert.deepEqual(
        events.map((e) => e.data),
        sent.map((s) => s.data),
      );
      assert.equal(events[2]!.data.length, 61_440);
    } finally {
      await page.close();
    }
  });
});

describe('the viewer through a server restart', () => {
  let first: ServerProcess | null = null;
  let second: ServerProcess | null = null;
  after(async () => {
    for (const p of [first, second]) {
      if (p === null) continue;
      p.kill('SIGKILL');
      await p.exited;
    }
  });

  test('the page reconnects to the new process and shows the reset', {
    timeout: 90_000,
  }, async () => {
    const env = {
      SSE_PUBLISH_TOKEN: TOKEN,
      SSE_RETRY_MS: '300',
      SSE_SHUTDOWN_RETRY_JITTER_MS: '300',
      LOG_LEVEL: 'warn',
    };
    first = await spawnServer({ ...env, LOG_LEVEL: 'info' });
    const { port, base } = first;
    const { page } = await openViewer(base);
    try {
      await connectChannel(page, 'news');
      for (let i = 0; i < 3; i++) {
        assert.equal((await publish(base, 'news', { data: `old ${i}` }, AUTH)).status, 202);
      }
      await waitForEvents(page, 3);
      first.kill('SIGTERM');
      assert.equal(await first.exited, 0);
      second = await spawnServer({ ...env, LOG_LEVEL: 'info', PORT: String(port) });
      // The new process has no record of the page's Last-Event-ID: it says so with `reset`.
      await page.locator('#events li.reset').waitFor({ timeout: 30_000 });
      await waitForState(page, 'open');
      const reset = (await shownEvents(page)).find((e) => e.event === 'reset');
      assert.ok(reset, 'a reset event is listed');
      const body = JSON.parse(reset.data) as { reason: string; lastEventId: string };
      assert.equal(typeof body.reason, 'string');
      assert.equal(body.lastEventId, (await shownEvents(page))[2]!.id);
      assert.equal(await page.locator('#resets').textContent(), '1');
      assert.equal((await publish(base, 'news', { data: 'new' }, AUTH)).status, 202);
      await page.waitForFunction(() =>
        [...document.querySelectorAll('#events li.event pre')].some((p) => p.textContent === 'new'),
      );
    } finally {
      await page.close();
    }
  });
});

describe('the viewer at maxConnections', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ limits: { maxConnections: 1 }, publish: { token: TOKEN } });
  });
  after(() => t.close());

  test('the page is refused, then reconnects on its own once capacity frees up', {
    timeout: 60_000,
  }, async () => {
    const held = new Subscriber(`${t.base}/sse/channels/held`);
    await held.opened;
    const { page } = await openViewer(t.base);
    try {
      await page.getByLabel('A channel').check();
      await page.locator('#channel').fill('busy');
      await page.getByRole('button', { name: 'Connect', exact: true }).click();
      await page.locator('#events li[data-event="overloaded"]').waitFor();
      await waitForState(page, 'reconnecting');
      const notice = (await shownEvents(page)).find((e) => e.event === 'overloaded');
      assert.equal((JSON.parse(notice!.data) as { error: string }).error, 'max_connections');
      held.close();
      await held.closed;
      // The retry is 2.5-7.5 s (Retry-After 5, jittered); no page code reconnects by hand.
      await waitForState(page, 'open', 30_000);
      assert.equal((await publish(t.base, 'busy', { data: 'in at last' }, AUTH)).status, 202);
      await page.waitForFunction(() =>
        [...document.querySelectorAll('#events li.event pre')].some(
          (p) => p.textContent === 'in at last',
        ),
      );
    } finally {
      held.close();
      await page.close();
    }
  });
});
