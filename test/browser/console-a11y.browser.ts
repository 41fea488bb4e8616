// Accessibility of the console in real Chromium: axe-core finds no violation in either layout
// (desktop 1280x800, phone 390x844) and either color scheme, with streams, events and resets on the
// page; the keyboard alone (Tab) reaches every control, on the phone pane by pane.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import {
  axeViolations,
  launchBrowser,
  type TestBrowser,
  tabOrder,
  visibleControls,
  waitForEvents,
  waitForState,
  watchErrors,
} from '../helpers/browser.ts';
import { publish, startServer, type TestServer } from '../helpers/server.ts';

const LAYOUTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

let browser: TestBrowser;
let t: TestServer;
before(async () => {
  browser = await launchBrowser();
  t = await startServer({ retryMs: 300 });
  await publish(t.base, 'a11y', [
    { event: 'created', data: { id: 1, tags: ['x', 'y'] } },
    { data: 'plain text' },
  ]);
});
after(async () => {
  await browser?.close();
  await t?.close();
});

/** The console with two streams, events and a reset on it. */
async function busyConsole(size: { width: number; height: number }): Promise<Page> {
  const page = await browser.context.newPage();
  await page.setViewportSize(size);
  // 5-0 is no id these channels gave out: both streams start with a reset (explained in words),
  // then a11y replays its two events.
  await page.goto(`${t.base}/?channel=a11y&channel=fresh&from=5-0`);
  await waitForState(page, 'open', 'a11y');
  await waitForState(page, 'open', 'fresh');
  await waitForEvents(page, 4);
  // The channel list shows both watched channels (rows do not come and go while Tab walks).
  await page.waitForFunction(
    () => document.querySelectorAll('#channel-list li.watched').length === 2,
  );
  return page;
}

function describeViolations(violations: Awaited<ReturnType<typeof axeViolations>>): string {
  return violations
    .map((v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.slice(0, 5).join('\n    ')}`)
    .join('\n');
}

describe('axe-core finds no violations', () => {
  for (const [layout, size] of Object.entries(LAYOUTS)) {
    for (const scheme of ['light', 'dark'] as const) {
      test(`${layout} ${size.width}x${size.height}, ${scheme}`, { timeout: 60_000 }, async () => {
        const page = await busyConsole(size);
        const errors = watchErrors(page);
        try {
          await page.emulateMedia({ colorScheme: scheme });
          const panes = layout === 'phone' ? ['channels', 'events', 'publish'] : ['events'];
          for (const pane of panes) {
            if (layout === 'phone') {
              await page
                .getByRole('button', { name: pane[0]!.toUpperCase() + pane.slice(1) })
                .click();
            }
            const violations = await axeViolations(page);
            assert.deepEqual(violations, [], `${pane} pane:\n${describeViolations(violations)}`);
          }
          assert.deepEqual(errors, [], 'axe ran without a CSP report or page error');
        } finally {
          await page.close();
        }
      });
    }
  }
});

describe('keyboard only', () => {
  test('desktop: Tab reaches every control, in reading order of the panes', {
    timeout: 60_000,
  }, async () => {
    const page = await busyConsole(LAYOUTS.desktop);
    try {
      const reached = await tabOrder(page);
      const controls = await visibleControls(page);
      const missing = controls.filter((c) => !reached.includes(c));
      assert.deepEqual(missing, [], `reached: ${reached.join(', ')}`);
      // Channels, then events, then publishing.
      const at = (id: string) => reached.indexOf(id);
      assert.ok(at('#prefix') < at('#watch-channels'));
      assert.ok(at('#watch-channels') < at('#events'));
      assert.ok(at('#events') < at('#publish-channel'));
      assert.ok(at('#publish-channel') < at('#publish'));
      // Keyboard use: watch a channel with Enter, pause with Space.
      await page.locator('#watch-channels').focus();
      await page.keyboard.type(', keys');
      await page.keyboard.press('Enter');
      await waitForState(page, 'open', 'keys');
      await page.locator('#pause').focus();
      await page.keyboard.press('Space');
      assert.equal(await page.locator('#pause').getAttribute('aria-pressed'), 'true');
    } finally {
      await page.close();
    }
  });

  test('phone: the pane buttons, then every control of the pane shown', {
    timeout: 60_000,
  }, async () => {
    const page = await busyConsole(LAYOUTS.phone);
    try {
      for (const pane of ['channels', 'events', 'publish']) {
        // Switch panes with the keyboard.
        await page.locator(`#show-${pane}`).focus();
        await page.keyboard.press('Enter');
        assert.equal(await page.locator(`#show-${pane}`).getAttribute('aria-pressed'), 'true');
        const reached = await tabOrder(page);
        const controls = await visibleControls(page);
        const missing = controls.filter((c) => !reached.includes(c));
        assert.deepEqual(missing, [], `${pane}: reached ${reached.join(', ')}`);
        assert.ok(reached.includes(`#show-${pane}`));
        assert.ok(await page.locator(`#${pane}-pane`).isVisible());
      }
    } finally {
      await page.close();
    }
  });
});
