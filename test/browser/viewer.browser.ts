// The page at / (the console, formerly the viewer) in real Chromium, on the behaviour the viewer's
// tests covered: a phone-sized screen, a channel (publish from the form, a cut, the resume without
// a gap), awkward event data, a server restart (the reset, in words), and a refusal at
// maxConnections that the page recovers from by itself. (The viewer's /sse/test source is gone:
// the console watches channels.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import {
  launchBrowser,
  shownEvents,
  streamRow,
  type TestBrowser,
  waitForEvents,
  waitForState,
  watchErrors,
} from '../helpers/browser.ts';
import { type ServerProcess, spawnServer } from '../helpers/process.ts';
import { publish, Subscriber, startServer, type TestServer } from '../helpers/server.ts';

const TOKEN = 'browser-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };

let browser: TestBrowser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

async function openConsole(base: string, query = ''): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  const res = await page.goto(`${base}/${query}`);
  assert.equal(res?.status(), 200);
  const csp = res?.headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  return { page, errors };
}

/** Watches a channel from the form (keyboard: Enter in the field) and waits until it is open. */
async function watchChannel(page: Page, channel: string): Promise<void> {
  await page.getByLabel('Channels to watch').fill(channel);
  await page.getByLabel('Channels to watch').press('Enter');
  await waitForState(page, 'open', channel);
}

describe('the console on a phone-sized screen', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('fits 360 px without sideways scrolling; every control has a label', {
    timeout: 60_000,
  }, async () => {
    const { page } = await openConsole(t.base);
    try {
      await page.setViewportSize({ width: 360, height: 740 });
      await watchChannel(page, 'narrow');
      await publish(t.base, 'narrow', {
        event: 'a-rather-long-event-name',
        data: { x: 'y'.repeat(300) },
      });
      await waitForEvents(page, 1);
      for (const pane of ['Channels', 'Events', 'Publish']) {
        await page.getByRole('button', { name: pane, exact: true }).click();
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 360, `${pane}: page is ${width} px wide`);
      }
      const unlabeled = await page.$$eval('input, textarea, select', (els) =>
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

describe('the console on a channel', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ retryMs: 300, publish: { token: TOKEN } });
  });
  after(() => t.close());

  test('events published from the form and by others appear; after a cut the page resumes with no gap', {
    timeout: 60_000,
  }, async () => {
    const { page, errors } = await openConsole(t.base);
    try {
      await watchChannel(page, 'news');
      // The publish form: the token, and a fresh Idempotency-Key for each publish.
      const key = await page.getByLabel('Idempotency-Key').inputValue();
      assert.match(key, /^[\x21-\x7e]{1,128}$/);
      await page.getByRole('radio', { name: 'Text', exact: true }).check();
      await page.getByLabel('Data', { exact: true }).fill('from the form');
      await page.getByLabel('Publish token').fill(TOKEN);
      await page.getByRole('button', { name: 'Publish', exact: true }).click();
      await waitForEvents(page, 1);
      assert.match(String(await page.locator('#publish-result').textContent()), /^Published: id /);
      assert.notEqual(await page.getByLabel('Idempotency-Key').inputValue(), key);
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
      await waitForState(page, 'open', 'news');
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
      const row = await streamRow(page, 'news');
      assert.ok(row.reconnects >= 1);
      assert.equal(row.events, 8);
      // The cut was told as a lost connection, then the reconnection.
      const notes = await page.locator('#events li.status').allTextContents();
      assert.ok(
        notes.some((n) => /lost: the connection broke/.test(n)),
        notes.join('\n'),
      );
      assert.ok(
        notes.some((n) => /connected, resuming after /.test(n)),
        notes.join('\n'),
      );
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test('multi-line, unicode and 60 KB events arrive intact', { timeout: 60_000 }, async () => {
    const { page } = await openConsole(t.base, '?channel=data');
    try {
      await waitForState(page, 'open', 'data');
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
      // The long one starts folded, with its size said.
      const long = page.locator('#events li.event').nth(2);
      assert.equal(await long.locator('details').getAttribute('open'), null);
      assert.equal(await long.locator('.size').textContent(), '60.0 KiB');
    } finally {
      await page.close();
    }
  });
});

describe('the console through a server restart', () => {
  let first: ServerProcess | null = null;
  let second: ServerProcess | null = null;
  after(async () => {
    for (const p of [first, second]) {
      if (p === null) continue;
      p.kill('SIGKILL');
      await p.exited;
    }
  });

  test('the page reconnects to the new process and explains the reset in words', {
    timeout: 90_000,
  }, async () => {
    const env = {
      SSE_PUBLISH_TOKEN: TOKEN,
      SSE_RETRY_MS: '300',
      SSE_SHUTDOWN_RETRY_JITTER_MS: '300',
      LOG_LEVEL: 'info',
    };
    first = await spawnServer(env);
    const { port, base } = first;
    const { page } = await openConsole(base, '?channel=news');
    try {
      await waitForState(page, 'open', 'news');
      for (let i = 0; i < 3; i++) {
        assert.equal((await publish(base, 'news', { data: `old ${i}` }, AUTH)).status, 202);
      }
      await waitForEvents(page, 3);
      const lastOld = (await shownEvents(page))[2]!.id;
      first.kill('SIGTERM');
      assert.equal(await first.exited, 0);
      // Stopped: the graceful end, then failed attempts while nothing listens.
      await waitForState(page, 'lost', 'news', 30_000);
      second = await spawnServer({ ...env, PORT: String(port) });
      // The new process has no record of the page's Last-Event-ID: it says so with `reset`.
      const reset = page.locator('#events li.event.reset');
      await reset.waitFor({ timeout: 30_000 });
      await waitForState(page, 'open', 'news');
      const data = JSON.parse((await shownEvents(page)).find((e) => e.event === 'reset')!.data) as {
        reason: string;
        lastEventId: string;
        resumeAfter: string;
      };
      assert.equal(data.reason, 'unknown_id');
      assert.equal(data.lastEventId, lastOld);
      const words = String(await reset.locator('.explain').textContent());
      assert.match(words, new RegExp(`the server does not know ${lastOld}`));
      assert.match(words, /restarted server/);
      assert.match(words, /goes on from the oldest event the server holds|goes on after /);
      assert.equal((await streamRow(page, 'news')).resets, 1);
      const notes = (await page.locator('#events li.status').allTextContents()).join('\n');
      assert.match(notes, /ended: the server ended the stream; reconnecting in /);
      assert.match(notes, /lost: the server could not be reached/);
      assert.equal((await publish(base, 'news', { data: 'new' }, AUTH)).status, 202);
      await page.waitForFunction(() =>
        [...document.querySelectorAll('#events li.event pre')].some((p) => p.textContent === 'new'),
      );
    } finally {
      await page.close();
    }
  });
});

describe('the console at maxConnections', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ limits: { maxConnections: 1 }, publish: { token: TOKEN } });
  });
  after(() => t.close());

  test('the page is refused with the reason, then reconnects on its own once capacity frees up', {
    timeout: 60_000,
  }, async () => {
    const held = new Subscriber(`${t.base}/sse/channels/held`);
    await held.opened;
    const { page } = await openConsole(t.base, '?channel=busy');
    try {
      await page.locator('#events li[data-event="overloaded"]').waitFor();
      await waitForState(page, 'refused', 'busy');
      const notice = (await shownEvents(page)).find((e) => e.event === 'overloaded');
      assert.equal((JSON.parse(notice!.data) as { error: string }).error, 'max_connections');
      const row = await streamRow(page, 'busy');
      assert.match(
        row.detail,
        /^overloaded: max_connections: the server is at its connection limit/,
      );
      const words = await page.locator('#events li.notice .explain').first().textContent();
      assert.match(String(words), /connection limit \(limits\.maxConnections\)/);
      held.close();
      await held.closed;
      // The retry is 2.5-7.5 s (Retry-After 5, jittered); no page code reconnects by hand.
      await waitForState(page, 'open', 'busy', 30_000);
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
