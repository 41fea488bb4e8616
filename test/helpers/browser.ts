/// <reference lib="dom" />
// Browser-test helpers: Debian's Chromium driven by playwright-core (never a downloaded browser),
// a second origin that serves a blank page, readers for the console's event list and connection
// rows, axe-core checks and the keyboard's Tab order.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Starts Chromium with a fresh profile directory (removed again by close()). */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'sse-chromium-'));
  // launchPersistentContext is playwright's way to pass --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 30_000,
    viewport: { width: 1000, height: 900 },
  });
  context.setDefaultTimeout(20_000);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}

export interface PageOrigin {
  base: string;
  close(): Promise<void>;
}

/** A second origin (another port on 127.0.0.1) serving an empty page, for cross-origin cases. */
export async function startPageOrigin(): Promise<PageOrigin> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><meta charset="utf-8"><title>another origin</title><p>page</p>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface ShownEvent {
  id: string;
  event: string;
  channel: string;
  /** The data as shown (JSON pretty-printed, anything else as it came). */
  data: string;
  hidden: boolean;
}

/** The events the console lists, oldest first (filtered-out ones included, with hidden set). */
export function shownEvents(page: Page): Promise<ShownEvent[]> {
  return page.$$eval('#events li.event', (items) =>
    items.map((li) => ({
      id: (li as HTMLElement).dataset.id ?? '',
      event: (li as HTMLElement).dataset.event ?? '',
      channel: (li as HTMLElement).dataset.channel ?? '',
      data: li.querySelector('pre')?.textContent ?? '',
      hidden: (li as HTMLElement).hidden === true,
    })),
  );
}

/** Waits until the console lists at least n events. */
export async function waitForEvents(page: Page, n: number, timeout = 20_000): Promise<void> {
  await page.waitForFunction(
    (count) => document.querySelectorAll('#events li.event').length >= count,
    n,
    { timeout },
  );
}

/** Waits until the stream of `channel` (any stream when omitted) is in the given state. */
export async function waitForState(
  page: Page,
  state: string,
  channel?: string,
  timeout = 20_000,
): Promise<void> {
  const key = channel === undefined ? '' : `[data-key="${channel}"]`;
  await page
    .locator(`#connection-rows tr${key}[data-state="${state}"]`)
    .first()
    .waitFor({ timeout });
}

export interface StreamRow {
  state: string;
  detail: string;
  events: number;
  reconnects: number;
  resets: number;
  lastId: string;
}

/** One row of the connections table. */
export function streamRow(page: Page, channel: string): Promise<StreamRow> {
  return page
    .locator(`#connection-rows tr[data-key="${channel}"]`)
    .evaluate((tr: HTMLTableRowElement) => {
      const text = (i: number) => tr.cells[i]?.textContent ?? '';
      const n = (i: number) => Number(text(i).replace(/,/g, ''));
      return {
        state: tr.dataset.state ?? '',
        detail: tr.querySelector('.detail')?.textContent ?? '',
        events: n(2),
        reconnects: n(4),
        resets: n(5),
        lastId: text(6),
      };
    });
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

let axeSource: string | null = null;

/**
 * Runs axe-core (node_modules/axe-core) on the page and returns its violations. The script goes in
 * through page.evaluate, which the page's CSP does not govern, so the page keeps its own policy.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= await readFile(
    new URL('../../node_modules/axe-core/axe.min.js', import.meta.url),
    'utf8',
  );
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    // biome-ignore lint/suspicious/noExplicitAny: axe is a global the script above defined
    const axe = (window as any).axe;
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return (
      result.violations as {
        id: string;
        impact: string | null;
        help: string;
        nodes: { target: string[] }[];
      }[]
    ).map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(' ')),
    }));
  });
}

/** What Tab reaches, in order, from the top of the page (ids, or a short description). */
export async function tabOrder(page: Page, max = 300): Promise<string[]> {
  // Start from the top of the page: focus a stand-in placed before everything, then Tab on.
  await page.evaluate(() => {
    const start = document.createElement('span');
    start.tabIndex = -1;
    start.id = 'tab-order-start';
    document.body.prepend(start);
    start.focus();
  });
  const seen: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const here = await page.evaluate(() => {
      const el = document.activeElement;
      if (el === null || el === document.body) return '';
      const html = el as HTMLInputElement;
      if (html.id) return `#${html.id}`;
      if (html.type === 'radio') return `radio:${html.name}`;
      const label = html.getAttribute('aria-label') ?? html.textContent?.trim().slice(0, 40);
      return `${html.tagName.toLowerCase()}:${label}`;
    });
    if (here === '' || here === seen[0]) break;
    seen.push(here);
  }
  await page.evaluate(() => document.getElementById('tab-order-start')?.remove());
  return seen;
}

/**
 * The controls a keyboard user must reach: visible, enabled buttons, inputs, selects, textareas,
 * links and focusable regions; a radio group counts once, by its checked radio.
 */
export function visibleControls(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const sel = 'button, input, select, textarea, a[href], summary, [tabindex="0"]';
    for (const el of document.querySelectorAll<HTMLElement>(sel)) {
      if ((el as HTMLButtonElement).disabled) continue;
      if (el.getClientRects().length === 0) continue; // not rendered
      const input = el as HTMLInputElement;
      if (input.type === 'radio' && !input.checked) continue;
      if (el.classList.contains('skip')) continue; // shown on focus only
      if (el.id) out.push(`#${el.id}`);
      else if (input.type === 'radio') out.push(`radio:${input.name}`);
      else {
        const label = el.getAttribute('aria-label') ?? el.textContent?.trim().slice(0, 40);
        out.push(`${el.tagName.toLowerCase()}:${label}`);
      }
    }
    return out;
  });
}

/** Records page errors and CSP violations (console errors that name the policy). */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
      errors.push(msg.text());
    }
  });
  return errors;
}
