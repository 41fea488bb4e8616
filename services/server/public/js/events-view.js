// The event list: a bounded list (the oldest entries go first, and the page says how many went),
// rendered once per animation frame, filtered by text and by event name, auto-scrolled only while
// the reader is at the bottom (scrolling up stops it, back at the bottom it follows again) and has
// not paused it. Entries are built with DOM calls only: event
// data never becomes markup.
import { explainNotice, explainReset, NOTICE_EVENTS } from './explain.js';
import { byteSize, clockTime, count, shownData } from './format.js';

export const DEFAULT_MAX_ENTRIES = 1000;
/** Data of at most this many lines and characters is shown open; longer data starts folded. */
const OPEN_LINES = 30;
const OPEN_CHARS = 4000;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class EventsView {
  /**
   * @param {{ list: HTMLOListElement, status: HTMLElement, eventSelect: HTMLSelectElement,
   *           max: number }} parts
   */
  constructor(parts) {
    this.list = parts.list;
    this.status = parts.status;
    this.eventSelect = parts.eventSelect;
    this.max = parts.max;
    this.queue = [];
    this.scheduled = false;
    this.paused = false;
    this.dropped = 0;
    this.filter = { text: '', event: '' };
    this.names = new Set();
    /** li -> what filtering and copying need (the raw data, never put in the DOM as markup). */
    this.meta = new WeakMap();
    /** The reader is at the newest entry: new ones keep it there (unless paused). */
    this.following = true;
    this.list.addEventListener('click', (e) => this.clicked(e));
    this.list.addEventListener('scroll', () => {
      const list = this.list;
      this.following = list.scrollHeight - list.scrollTop - list.clientHeight <= 4;
    });
    // The list's box changes (the connections table grows, the window is resized): stay at the
    // newest entry when following.
    new ResizeObserver(() => {
      if (this.following && !this.paused) this.list.scrollTop = this.list.scrollHeight;
    }).observe(this.list);
  }

  /** Queues an entry: { kind: 'event', channel, id, event, data, size, receivedAt } or
   *  { kind: 'status', channel, text, level }. */
  add(entry) {
    this.queue.push(entry);
    if (this.queue.length > this.max) {
      this.queue.shift();
      this.dropped++;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // A hidden tab runs no animation frames: render from a timer there.
    if (document.hidden) setTimeout(() => this.flush(), 500);
    else requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.scheduled = false;
    const list = this.list;
    const fragment = document.createDocumentFragment();
    for (const entry of this.queue) fragment.append(this.render(entry));
    this.queue = [];
    list.append(fragment);
    let removedAbove = 0;
    while (list.childElementCount > this.max) {
      const first = list.firstElementChild;
      removedAbove += first.offsetHeight;
      first.remove();
      this.dropped++;
    }
    if (!this.paused && this.following) list.scrollTop = list.scrollHeight;
    else if (removedAbove > 0) list.scrollTop = Math.max(0, list.scrollTop - removedAbove);
    this.showStatus();
  }

  render(entry) {
    return entry.kind === 'status' ? this.renderStatus(entry) : this.renderEvent(entry);
  }

  renderStatus(entry) {
    const li = el('li', `status ${entry.level ?? ''}`.trim());
    li.dataset.channel = entry.channel;
    const at = el('time', 'at', clockTime(entry.at));
    at.dateTime = entry.at.toISOString();
    li.append(at, ' ', el('span', 'channel', entry.channel), ' ', entry.text);
    this.meta.set(li, { kind: 'status', channel: entry.channel, event: '', text: entry.text });
    li.hidden = !this.matches(li);
    return li;
  }

  renderEvent(entry) {
    const li = el('li', 'event');
    const { event, channel, id, data } = entry;
    li.dataset.id = id;
    li.dataset.event = event;
    li.dataset.channel = channel;
    if (event === 'reset') li.classList.add('reset');
    if (NOTICE_EVENTS.has(event)) li.classList.add('notice');
    const meta = el('div', 'meta');
    const at = el('time', 'at', clockTime(entry.receivedAt));
    at.dateTime = entry.receivedAt.toISOString();
    const copy = el('button', 'copy secondary small', 'Copy');
    copy.type = 'button';
    copy.setAttribute(
      'aria-label',
      `Copy the data of ${event} ${id || 'without id'} on ${channel}`,
    );
    meta.append(
      at,
      el('span', 'channel', channel),
      el('span', 'name', event),
      el('span', 'id', id ? `id ${id}` : 'no id'),
      el('span', 'size', byteSize(entry.size)),
      copy,
    );
    li.append(meta);
    if (event === 'reset') li.append(el('p', 'explain', explainReset(channel, data)));
    if (NOTICE_EVENTS.has(event)) {
      const { code, words } = explainNotice(event, data);
      li.append(
        el('p', 'explain', `Refused (${code}): ${words}. The console comes back by itself.`),
      );
    }
    const shown = shownData(data);
    const lines = shown.text.split('\n').length;
    const details = el('details', 'data');
    details.open = lines <= OPEN_LINES && shown.text.length <= OPEN_CHARS;
    const kind = shown.json ? 'JSON' : 'text';
    const summary = el(
      'summary',
      '',
      lines > 1 ? `${kind}, ${count(lines)} lines` : `${kind}, ${count(data.length)} characters`,
    );
    const pre = el('pre', shown.json ? 'json' : '', shown.text);
    details.append(summary, pre);
    li.append(details);
    this.meta.set(li, { kind: 'event', channel, event, id, data });
    this.learnName(event);
    li.hidden = !this.matches(li);
    return li;
  }

  /** Adds an event name to the filter's choices (sorted). */
  learnName(name) {
    if (this.names.has(name)) return;
    this.names.add(name);
    const option = el('option', '', name);
    option.value = name;
    const after = [...this.eventSelect.options].find((o) => o.value !== '' && o.value > name);
    this.eventSelect.insertBefore(option, after ?? null);
  }

  matches(li) {
    const m = this.meta.get(li);
    if (m === undefined) return true;
    const { text, event } = this.filter;
    if (event !== '' && m.event !== event) return false;
    if (text === '') return true;
    const q = text.toLowerCase();
    const fields = m.kind === 'event' ? [m.channel, m.event, m.id, m.data] : [m.channel, m.text];
    return fields.some((f) => f.toLowerCase().includes(q));
  }

  setFilter(filter) {
    this.filter = { text: filter.text ?? '', event: filter.event ?? '' };
    if (this.filter.event !== '') this.learnName(this.filter.event);
    this.eventSelect.value = this.filter.event;
    for (const li of this.list.children) li.hidden = !this.matches(li);
    this.showStatus();
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) {
      this.following = true;
      this.list.scrollTop = this.list.scrollHeight;
    }
  }

  clear() {
    this.queue = [];
    this.list.replaceChildren();
    this.dropped = 0;
    this.showStatus();
  }

  showStatus() {
    const total = this.list.childElementCount;
    let shown = 0;
    for (const li of this.list.children) if (!li.hidden) shown++;
    const parts = [];
    const filtered = this.filter.text !== '' || this.filter.event !== '';
    parts.push(
      filtered ? `Showing ${count(shown)} of ${count(total)} entries.` : `${count(total)} entries.`,
    );
    if (this.dropped > 0) {
      parts.push(
        `${count(this.dropped)} older entries were dropped: the list keeps the newest ${count(this.max)}.`,
      );
    }
    if (this.paused) parts.push('Scrolling paused.');
    this.status.textContent = total === 0 && this.dropped === 0 ? '' : parts.join(' ');
  }

  async clicked(e) {
    const button = e.target.closest('button.copy');
    if (button === null) return;
    const m = this.meta.get(button.closest('li'));
    if (m === undefined) return;
    const ok = await copyText(m.data);
    button.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      button.textContent = 'Copy';
    }, 1500);
  }
}

/** Copies text to the clipboard; falls back to a selected textarea where the API is missing. */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el('textarea', 'visually-hidden');
    area.value = text;
    area.setAttribute('aria-hidden', 'true');
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  }
}
