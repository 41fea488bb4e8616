/// <reference lib="dom" />
// Browser-test helpers: Debian's Chromium driven by playwright-core (never a downloaded browser),
// a second origin that serves a blank page, and readers for the viewer's event list.
import { mkdtemp, rm } from 'node:fs/promises';
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
  data: string;
}

/** The events the viewer lists, oldest first. */
export function shownEvents(page: Page): Promise<ShownEvent[]> {
  return page.$$eval('#events li.event', (items) =>
    items.map((li) => ({
      id: (li as HTMLElement).dataset.id ?? '',
      event: (li as HTMLElement).dataset.event ?? '',
      data: li.querySelector('pre')?.textContent ?? '',
    })),
  );
}

/** Waits until the viewer lists at least n events. */
export async function waitForEvents(page: Page, n: number, timeout = 20_000): Promise<void> {
  await page.waitForFunction(
    (count) => document.querySelectorAll('#events li.event').length >= count,
    n,
    { timeout },
  );
}

/** Waits until the viewer shows the given connection state. */
export async function waitForState(page: Page, state: string, timeout = 20_000): Promise<void> {
  await page.locator(`#state[data-state="${state}"]`).waitFor({ timeout });
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
