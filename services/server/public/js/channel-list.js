// The channel list: GET /channels (the admin channel API), polled every few seconds while the page
// is visible, filtered by name prefix, paged with "More channels". Rows are updated in place, so
// focus and the Watch buttons survive a refresh.
import { age, count } from './format.js';

const POLL_MS = 3000;
const PAGE = 100;
const MAX_LIMIT = 500;

const WHY = {
  401: 'The channel list needs the admin token (auth.adminToken): enter it above.',
  403: 'The channel API answers this machine only unless the server sets auth.adminToken.',
  503: 'The event broker is unreachable; the list comes back when it is.',
};

export class ChannelList {
  /**
   * @param {{ list: HTMLUListElement, status: HTMLElement, more: HTMLButtonElement,
   *           prefix: HTMLInputElement, token: HTMLInputElement,
   *           isWatched: (name: string) => boolean, onToggle: (name: string) => void,
   *           onNames: (names: string[]) => void }} parts
   */
  constructor(parts) {
    this.parts = parts;
    this.rows = new Map();
    this.pages = 1;
    this.next = null;
    this.timer = null;
    this.inFlight = null;
    parts.more.addEventListener('click', () => {
      this.pages = Math.min(this.pages + 1, MAX_LIMIT / PAGE);
      this.refresh();
    });
    parts.prefix.addEventListener('input', () => {
      this.pages = 1;
      this.refresh();
    });
    parts.token.addEventListener('change', () => this.refresh());
    parts.list.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-channel]');
      if (button) parts.onToggle(button.dataset.channel);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) this.refresh();
    });
  }

  start() {
    this.refresh();
    this.timer ??= setInterval(() => {
      if (!document.hidden) this.refresh();
    }, POLL_MS);
  }

  async refresh() {
    const prefix = this.parts.prefix.value.trim();
    if (!this.parts.prefix.checkValidity()) {
      this.parts.status.textContent = 'Names hold only A-Z a-z 0-9 . _ : -';
      return;
    }
    this.inFlight?.abort();
    const controller = new AbortController();
    this.inFlight = controller;
    const query = new URLSearchParams({ limit: String(Math.min(MAX_LIMIT, PAGE * this.pages)) });
    if (prefix) query.set('prefix', prefix);
    const headers = {};
    const token = this.parts.token.value;
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    let body;
    try {
      res = await fetch(`/channels?${query}`, {
        headers,
        cache: 'no-store',
        signal: controller.signal,
      });
      body = await res.json();
    } catch {
      if (!controller.signal.aborted) {
        this.parts.status.textContent = 'The server cannot be reached; trying again.';
      }
      return;
    } finally {
      if (this.inFlight === controller) this.inFlight = null;
    }
    if (!res.ok) {
      this.parts.status.textContent = WHY[res.status] ?? `${res.status}: ${body?.message ?? ''}`;
      return;
    }
    this.show(body.channels, body.next, prefix);
  }

  show(channels, next, prefix) {
    const { list, status, more } = this.parts;
    const seen = new Set();
    let previous = null;
    for (const facts of channels) {
      seen.add(facts.name);
      const row = this.row(facts.name);
      this.fill(row, facts);
      // Keep the server's order (by name) without moving rows that are already in place.
      const want = previous === null ? list.firstElementChild : previous.nextElementSibling;
      if (want !== row.li) list.insertBefore(row.li, want);
      previous = row.li;
    }
    for (const [name, row] of this.rows) {
      if (seen.has(name)) continue;
      row.li.remove();
      this.rows.delete(name);
    }
    this.next = next;
    more.hidden = next === null || this.pages * PAGE >= MAX_LIMIT;
    const where = prefix ? ` starting with ${prefix}` : '';
    status.textContent =
      channels.length === 0
        ? `No channel${where} has subscribers or history.`
        : `${count(channels.length)} channel${channels.length === 1 ? '' : 's'}${where}${next === null ? '' : ' (more below)'}.`;
    this.parts.onNames(channels.map((c) => c.name));
  }

  row(name) {
    let row = this.rows.get(name);
    if (row !== undefined) return row;
    const li = document.createElement('li');
    const title = document.createElement('span');
    title.className = 'name';
    title.textContent = name;
    const facts = document.createElement('span');
    facts.className = 'facts';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'secondary small';
    button.dataset.channel = name;
    li.append(title, facts, button);
    row = { li, facts, button };
    this.rows.set(name, row);
    return row;
  }

  fill(row, facts) {
    const subscribers = `${count(facts.subscribers)} subscriber${facts.subscribers === 1 ? '' : 's'}`;
    const held = `${count(facts.historyLength)} held`;
    const last = facts.lastPublishAt === null ? 'no event yet' : `last ${age(facts.lastPublishAt)}`;
    row.facts.textContent = `${subscribers} · ${held} · ${last}`;
    row.facts.title = facts.lastEventId ? `last id ${facts.lastEventId}` : 'no event yet';
    row.li.dataset.subscribers = String(facts.subscribers);
    this.mark(row);
  }

  mark(row) {
    const name = row.button.dataset.channel;
    const watched = this.parts.isWatched(name);
    row.button.textContent = watched ? 'Stop' : 'Watch';
    row.button.setAttribute('aria-label', `${watched ? 'Stop watching' : 'Watch'} ${name}`);
    row.li.classList.toggle('watched', watched);
  }

  /** The watched set changed: update the buttons. */
  marks() {
    for (const row of this.rows.values()) this.mark(row);
  }
}
