// The console in real Chromium: the URL connects (one stream per channel), every event name shows
// with its channel and time, JSON is pretty-printed, pausing keeps the scroll position, filters
// hide and show, the list is bounded and says so, Copy copies the data as received, "from the
// oldest" and "after an id" replay the history, a 401 is shown with its reason and not retried,
// the channel list counts subscribers; screenshots of both layouts.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
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
import { ROOT } from '../helpers/process.ts';
import { publish, startServer, type TestServer } from '../helpers/server.ts';

const SCREENSHOTS = join(ROOT, 'test/browser/screenshots');

let browser: TestBrowser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

async function openConsole(base: string, query = '', size = { width: 1280, height: 800 }) {
  const page = await browser.context.newPage();
  await page.setViewportSize(size);
  const errors = watchErrors(page);
  const res = await page.goto(`${base}/${query}`);
  assert.equal(res?.status(), 200);
  return { page, errors };
}

/** Scroll facts of the event list. */
function listScroll(page: Page) {
  return page.locator('#events').evaluate((el) => ({
    top: el.scrollTop,
    atBottom: el.scrollHeight - el.scrollTop - el.clientHeight <= 4,
    scrollable: el.scrollHeight > el.clientHeight + 50,
  }));
}

/** Waits until every queued entry is on the page (the list renders once per animation frame). */
async function settled(page: Page, events: number) {
  await waitForEvents(page, events);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
}

describe('the console on a memory-broker server', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ retryMs: 300 });
  });
  after(() => t.close());

  test('/?channel=a&channel=b connects both; an unheard-of event name shows with its channel and time; JSON is pretty-printed', {
    timeout: 60_000,
  }, async () => {
    const { page, errors } = await openConsole(t.base, '?channel=a&channel=b');
    try {
      await waitForState(page, 'open', 'a');
      await waitForState(page, 'open', 'b');
      const before = Date.now();
      const json = { order: 7, items: [{ sku: 'x1', qty: 2 }], note: 'naïve ✓' };
      const r1 = await publish(t.base, 'b', { event: 'never-heard-of', data: json });
      const r2 = await publish(t.base, 'a', { data: 'plain text, not JSON {' });
      await waitForEvents(page, 2);
      const events = await shownEvents(page);
      const named = events.find((e) => e.event === 'never-heard-of');
      assert.ok(named, 'the named event is listed although the page never listened for it');
      assert.equal(named.channel, 'b');
      assert.equal(named.id, r1.body.ids![0]);
      assert.equal(named.data, JSON.stringify(json, null, 2));
      const plain = events.find((e) => e.channel === 'a')!;
      assert.equal(plain.event, 'message');
      assert.equal(plain.id, r2.body.ids![0]);
      assert.equal(plain.data, 'plain text, not JSON {');
      // Received time, channel, name, id and size are on the row.
      const row = page.locator(`#events li.event[data-id="${r1.body.ids![0]}"]`);
      const time = await row.locator('time').getAttribute('datetime');
      assert.ok(Date.parse(String(time)) >= before - 1000, `received at ${time}`);
      assert.match(String(await row.locator('time').textContent()), /^\d\d:\d\d:\d\d\.\d{3}$/);
      assert.equal(await row.locator('.channel').textContent(), 'b');
      assert.equal(await row.locator('.name').textContent(), 'never-heard-of');
      assert.match(String(await row.locator('.size').textContent()), /^\d+ B$/);
      // JSON folds and unfolds.
      assert.equal(await row.locator('details').getAttribute('open'), '');
      await row.locator('summary').click();
      assert.equal(await row.locator('details').getAttribute('open'), null);
      // Counters per connection.
      const b = await streamRow(page, 'b');
      assert.equal(b.events, 1);
      assert.equal(b.lastId, r1.body.ids![0]);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test('auto-scroll follows only at the bottom; pause keeps the scroll position while events arrive', {
    timeout: 60_000,
  }, async () => {
    const { page } = await openConsole(t.base, '?channel=scroll');
    try {
      await waitForState(page, 'open', 'scroll');
      const lines = (i: number) => ({ data: `event ${i}\nsecond line\nthird line` });
      const batch = (from: number, n: number) =>
        publish(
          t.base,
          'scroll',
          Array.from({ length: n }, (_, i) => lines(from + i)),
        );
      await batch(0, 40);
      await settled(page, 40);
      let s = await listScroll(page);
      assert.ok(s.scrollable, 'the list is long enough to scroll');
      assert.ok(s.atBottom, 'following the newest events');
      // Paused: new events do not move the list.
      await page.locator('#events').evaluate((el) => {
        el.scrollTop = 120;
      });
      await page.getByRole('button', { name: 'Pause scrolling' }).click();
      assert.equal(
        await page.getByRole('button', { name: 'Pause scrolling' }).getAttribute('aria-pressed'),
        'true',
      );
      await batch(40, 20);
      await settled(page, 60);
      s = await listScroll(page);
      assert.equal(s.top, 120, 'paused: the position is kept');
      // Resumed: back to the newest, and following again.
      await page.getByRole('button', { name: 'Pause scrolling' }).click();
      await batch(60, 5);
      await settled(page, 65);
      assert.ok((await listScroll(page)).atBottom);
      // Not paused but scrolled up (reading): the list does not jump either.
      await page.locator('#events').evaluate((el) => {
        el.scrollTop = 200;
      });
      await batch(65, 10);
      await settled(page, 75);
      assert.equal((await listScroll(page)).top, 200);
    } finally {
      await page.close();
    }
  });

  test('filters by text and by event name hide and show events; the URL keeps them', {
    timeout: 60_000,
  }, async () => {
    const { page } = await openConsole(t.base, '?channel=filters');
    try {
      await waitForState(page, 'open', 'filters');
      await publish(t.base, 'filters', [
        { event: 'price', data: { sym: 'ACME', px: 10 } },
        { event: 'trade', data: { sym: 'ACME', qty: 5 } },
        { event: 'price', data: { sym: 'INIT', px: 3 } },
        { data: 'hello' },
      ]);
      await settled(page, 4);
      const visible = async () =>
        (await shownEvents(page)).filter((e) => !e.hidden).map((e) => e.event);
      await page.getByLabel('Filter text').fill('acme');
      assert.deepEqual(await visible(), ['price', 'trade']);
      await page.getByLabel('Event name', { exact: true }).selectOption('price');
      assert.deepEqual(await visible(), ['price']);
      assert.match(page.url(), /[?&]q=acme/);
      assert.match(page.url(), /[?&]event=price/);
      assert.match(String(await page.locator('#list-status').textContent()), /Showing 1 of \d+/);
      await page.getByLabel('Filter text').fill('');
      assert.deepEqual(await visible(), ['price', 'price']);
      await page.getByLabel('Event name', { exact: true }).selectOption('');
      assert.deepEqual(await visible(), ['price', 'trade', 'price', 'message']);
      // Clear empties the list.
      await page.getByRole('button', { name: 'Clear' }).click();
      await page.waitForFunction(() => document.querySelectorAll('#events li').length === 0);
    } finally {
      await page.close();
    }
  });

  test('the list is bounded (max in the URL): the oldest go and the page says how many', {
    timeout: 60_000,
  }, async () => {
    const { page } = await openConsole(t.base, '?channel=bounded&max=20');
    try {
      await waitForState(page, 'open', 'bounded');
      const r = await publish(
        t.base,
        'bounded',
        Array.from({ length: 30 }, (_, i) => ({ data: `n${i}` })),
      );
      await page.waitForFunction(() =>
        [...document.querySelectorAll('#events li.event pre')].some((p) => p.textContent === 'n29'),
      );
      const events = await shownEvents(page);
      // 20 entries in all: the "connected" line went first, then the oldest events.
      assert.equal(await page.locator('#events li').count(), 20);
      assert.deepEqual(
        events.map((e) => e.data),
        Array.from({ length: 20 }, (_, i) => `n${i + 10}`),
      );
      assert.equal(events.at(-1)!.id, r.body.ids![29]);
      assert.match(
        String(await page.locator('#list-status').textContent()),
        /11 older entries were dropped: the list keeps the newest 20\./,
      );
    } finally {
      await page.close();
    }
  });

  test('Copy puts the data as received on the clipboard', { timeout: 60_000 }, async () => {
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], {
      origin: t.base,
    });
    const { page } = await openConsole(t.base, '?channel=copy');
    try {
      await waitForState(page, 'open', 'copy');
      await publish(t.base, 'copy', { data: { compact: true, list: [1, 2] } });
      await settled(page, 1);
      const copy = page.getByRole('button', { name: /^Copy the data of message / });
      await copy.click();
      await page.locator('#events li.event .copy', { hasText: 'Copied' }).waitFor();
      assert.equal(
        await page.evaluate(() => navigator.clipboard.readText()),
        '{"compact":true,"list":[1,2]}',
      );
    } finally {
      await page.close();
    }
  });

  test('from=oldest replays the history (Last-Event-ID 0-0); from=<id> starts after it', {
    timeout: 60_000,
  }, async () => {
    const r = await publish(
      t.base,
      'history',
      ['one', 'two', 'three'].map((data) => ({ data })),
    );
    const ids = r.body.ids!;
    const oldest = await openConsole(t.base, '?channel=history&from=oldest');
    try {
      await settled(oldest.page, 3);
      assert.deepEqual(
        (await shownEvents(oldest.page)).map((e) => [e.id, e.data]),
        [
          [ids[0], 'one'],
          [ids[1], 'two'],
          [ids[2], 'three'],
        ],
      );
      assert.equal(
        await oldest.page.locator('input[name="from"][value="oldest"]').isChecked(),
        true,
      );
    } finally {
      await oldest.page.close();
    }
    const later = await openConsole(t.base, `?channel=history&from=${ids[0]}`);
    try {
      await settled(later.page, 2);
      assert.deepEqual(
        (await shownEvents(later.page)).map((e) => e.data),
        ['two', 'three'],
      );
      assert.equal(await later.page.locator('#after-id').inputValue(), ids[0]);
    } finally {
      await later.page.close();
    }
  });

  test('watching from the form puts the view in the URL; the channel list counts the subscribers', {
    timeout: 60_000,
  }, async () => {
    await publish(t.base, 'listed', { data: 'x' });
    const { page } = await openConsole(t.base);
    try {
      // A name the server would refuse is caught before anything connects.
      await page.getByLabel('Channels to watch').fill('listed, no/slash');
      await page.getByRole('button', { name: 'Watch', exact: true }).click();
      assert.match(
        String(await page.locator('#watch-note').textContent()),
        /Not a channel name: no\/slash/,
      );
      assert.equal(await page.getByLabel('Channels to watch').getAttribute('aria-invalid'), 'true');
      assert.equal(await page.locator('#connection-rows tr').count(), 0);
      await page.getByLabel('Channels to watch').fill('listed, other');
      await page.getByLabel('From the oldest held').check();
      await page.getByRole('button', { name: 'Watch', exact: true }).click();
      await waitForState(page, 'open', 'listed');
      await waitForState(page, 'open', 'other');
      assert.equal(new URL(page.url()).search, '?channel=listed&channel=other&from=oldest');
      const row = page.locator('#channel-list li', { hasText: 'listed' });
      await row.filter({ hasText: '1 subscriber ·' }).waitFor();
      assert.match(String(await row.textContent()), /1 held/);
      // The list's button stops watching a channel; the other stream goes on.
      await page.getByRole('button', { name: 'Stop watching listed' }).click();
      await page.waitForFunction(
        () => new URL(location.href).search === '?channel=other&from=oldest',
      );
      await waitForState(page, 'open', 'other');
      assert.equal(await page.locator('#connection-rows tr[data-key="listed"]').count(), 0);
    } finally {
      await page.close();
    }
  });
});

describe('the console with a subscribe token', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ subscribe: { token: 'sub-secret' }, retryMs: 300 });
  });
  after(() => t.close());

  test('a 401 is shown with its reason and not retried; with the token the stream opens', {
    timeout: 60_000,
  }, async () => {
    const { page } = await openConsole(t.base, '?channel=private');
    try {
      await waitForState(page, 'refused', 'private');
      const row = await streamRow(page, 'private');
      assert.match(row.detail, /^401 unauthorized: a valid subscribe token is required/);
      assert.equal(row.reconnects, 0);
      const note = page.locator('#events li.status.refused');
      assert.match(String(await note.first().textContent()), /401/);
      // Final: no retry comes.
      await page.waitForTimeout(1000);
      assert.equal((await streamRow(page, 'private')).reconnects, 0);
      await page.getByLabel('Subscribe token').fill('sub-secret');
      await page.getByRole('button', { name: 'Watch', exact: true }).click();
      await waitForState(page, 'open', 'private');
      assert.doesNotMatch(page.url(), /sub-secret/, 'the token never goes into the URL');
    } finally {
      await page.close();
    }
  });
});

describe('screenshots of the console', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ retryMs: 300 });
  });
  after(() => t.close());

  test('desktop (1280x800) and phone (390x844), light and dark', { timeout: 60_000 }, async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await publish(t.base, 'orders', [
      { event: 'created', data: { id: 7, items: [{ sku: 'A-1', qty: 2 }], total: 19.9 } },
      { event: 'paid', data: { id: 7, method: 'card' } },
    ]);
    const { page, errors } = await openConsole(
      t.base,
      '?channel=orders&channel=prices&from=oldest',
    );
    try {
      await waitForState(page, 'open', 'prices');
      await publish(t.base, 'prices', { event: 'tick', data: { sym: 'ACME', px: 101.25 } });
      await publish(t.base, 'orders', { event: 'shipped', data: 'parcel 7 left the warehouse' });
      await settled(page, 4);
      await page.locator('#channel-list li').nth(1).waitFor();
      await page.getByLabel('Publish token').fill('not-a-real-token');
      await page.getByLabel('Channel', { exact: true }).fill('orders');
      await page.getByLabel('Event name (optional)').fill('refunded');
      await page.getByLabel('Data', { exact: true }).fill('{"id": 7, "amount": 19.9}');
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await page.screenshot({ path: join(SCREENSHOTS, 'console.png') });
      await page.screenshot({ path: join(SCREENSHOTS, 'console-desktop-light.png') });
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.screenshot({ path: join(SCREENSHOTS, 'console-desktop-dark.png') });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.emulateMedia({ colorScheme: 'light' });
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `the phone layout is ${width} px wide`);
      await page.screenshot({ path: join(SCREENSHOTS, 'console-phone-light.png') });
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.screenshot({ path: join(SCREENSHOTS, 'console-phone-dark.png') });
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
});
