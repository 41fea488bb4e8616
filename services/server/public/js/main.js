// The console: the channel list (GET /channels), the watched channels' streams and their events,
// and the publish form, wired together; the view lives in the URL. Plain DOM, no framework; the
// page's CSP allows same-origin scripts, styles and connections only.
import { ChannelList } from './channel-list.js';
import { EventsView } from './events-view.js';
import { byteSize, count, seconds } from './format.js';
import { PublishForm } from './publish.js';
import { EventStream } from './stream.js';
import { streamTargets } from './targets.js';
import { EVENT_ID, readView, splitNames, writeView } from './view-url.js';

const $ = (id) => document.getElementById(id);
const ui = {
  main: $('console'),
  summary: $('summary'),
  watchForm: $('watch-form'),
  watchChannels: $('watch-channels'),
  afterId: $('after-id'),
  subscribeToken: $('subscribe-token'),
  stop: $('stop'),
  watchNote: $('watch-note'),
  rows: $('connection-rows'),
  filterText: $('filter-text'),
  filterEvent: $('filter-event'),
  pause: $('pause'),
  clear: $('clear'),
  knownChannels: $('known-channels'),
};

const view = readView(location.search);
/** key -> EventStream, in the order the channels were given. */
const streams = new Map();
/** The watched channels. */
let watched = [];
/** Channel names the list showed last (for the publish form's suggestions). */
let listed = [];

const events = new EventsView({
  list: $('events'),
  status: $('list-status'),
  eventSelect: ui.filterEvent,
  max: view.max,
});

const channelList = new ChannelList({
  list: $('channel-list'),
  status: $('channels-status'),
  more: $('channels-more'),
  prefix: $('prefix'),
  token: $('admin-token'),
  isWatched: (name) => watched.includes(name),
  onToggle: (name) => {
    const adding = !watched.includes(name);
    const next = adding ? [...watched, name] : watched.filter((c) => c !== name);
    // On a phone, show the events of a channel just added.
    if (watch(next, false) && adding) showPane('events');
  },
  onNames: (names) => {
    listed = names;
    suggestChannels();
  },
});

const publishForm = new PublishForm({
  form: $('publish-form'),
  result: $('publish-result'),
  onPublished: () => channelList.refresh(),
});

// --- start option ------------------------------------------------------------------------------

function startChoice() {
  const from = ui.watchForm.elements.namedItem('from').value;
  return { from, after: ui.afterId.value.trim() };
}

/** The Last-Event-ID of a new stream: none (live), `0-0` (the oldest held) or the given id. */
function firstLastEventId({ from, after }) {
  if (from === 'oldest') return '0-0';
  if (from === 'after') return after;
  return null;
}

// --- watching ----------------------------------------------------------------------------------

/**
 * Watches exactly `channels`: streams of channels no longer watched stop, new ones start (all of
 * them anew with `restart`). Returns false when the start option is not valid.
 */
function watch(channels, restart) {
  const start = startChoice();
  if (start.from === 'after' && !EVENT_ID.test(start.after)) {
    ui.afterId.setAttribute('aria-invalid', 'true');
    ui.watchNote.textContent = 'Give the id to start after, like 1795862747381-0.';
    ui.afterId.focus();
    return false;
  }
  ui.afterId.removeAttribute('aria-invalid');
  const targets = streamTargets(channels);
  const keep = new Set(restart ? [] : targets.map((t) => t.key));
  for (const [key, stream] of streams) {
    if (keep.has(key)) continue;
    stream.stop();
    streams.delete(key);
    ui.rows.querySelector(`tr[data-key="${CSS.escape(key)}"]`)?.remove();
  }
  for (const target of targets) {
    if (streams.has(target.key)) continue;
    const stream = new EventStream({
      target,
      lastEventId: firstLastEventId(start),
      token: () => ui.subscribeToken.value,
      onEvent: (entry) => events.add(entry),
      onChange: changed,
    });
    streams.set(target.key, stream);
    stream.start();
  }
  watched = [...channels];
  ui.watchChannels.value = watched.join(', ');
  ui.stop.disabled = watched.length === 0;
  channelList.marks();
  publishForm.suggest(watched[0]);
  suggestChannels();
  saveView();
  renderRows();
  // The list shows the new subscribers once the streams are open.
  setTimeout(() => channelList.refresh(), 500);
  return true;
}

// --- connection states -------------------------------------------------------------------------

/** Which state each stream last wrote a line for: a line per change, not per retry. */
const noted = new WeakMap();
let rowsScheduled = false;

function changed(stream, note) {
  if (note !== null && noted.get(stream) !== stream.state) {
    noted.set(stream, stream.state);
    events.add({
      kind: 'status',
      channel: stream.target.channels.join(', '),
      text: note,
      level: stream.state,
      at: new Date(),
    });
  }
  if (note !== null) summarize();
  if (rowsScheduled) return;
  rowsScheduled = true;
  requestAnimationFrame(() => {
    rowsScheduled = false;
    renderRows();
  });
}

const LABELS = ['', 'State', 'Events', 'Bytes', 'Reconnects', 'Resets', 'Last id'];

function cell(tr, i) {
  while (tr.cells.length <= i) {
    const td = tr.insertCell();
    const index = tr.cells.length - 1;
    // The column's name, shown before the value where the table is one block per row (phones).
    if (index > 1) td.dataset.label = LABELS[index];
  }
  return tr.cells[i];
}

function renderRows() {
  const now = Date.now();
  let previous = null;
  for (const [key, stream] of streams) {
    let tr = ui.rows.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    if (tr === null) {
      tr = document.createElement('tr');
      tr.dataset.key = key;
      const th = document.createElement('th');
      th.scope = 'row';
      tr.append(th);
      const state = document.createElement('span');
      state.className = 'state';
      const detail = document.createElement('small');
      detail.className = 'detail';
      cell(tr, 1).append(state, detail);
    }
    const want = previous === null ? ui.rows.firstElementChild : previous.nextElementSibling;
    if (want !== tr) ui.rows.insertBefore(tr, want);
    previous = tr;
    tr.dataset.state = stream.state;
    tr.cells[0].textContent = stream.target.channels.join(', ');
    const [state, detail] = tr.cells[1].children;
    state.textContent = stream.state;
    state.dataset.state = stream.state;
    const wait =
      stream.nextAttemptAt > now ? `; next try in ${seconds(stream.nextAttemptAt - now)}` : '';
    detail.textContent = stream.detail + wait;
    const c = stream.counters;
    cell(tr, 2).textContent = count(c.events);
    cell(tr, 3).textContent = byteSize(c.bytes);
    cell(tr, 4).textContent = count(c.reconnects);
    cell(tr, 5).textContent = count(c.resets);
    cell(tr, 6).textContent = stream.lastEventId || '–';
  }
}

// Count down the waits.
setInterval(() => {
  for (const stream of streams.values()) {
    if (stream.nextAttemptAt > 0) {
      renderRows();
      return;
    }
  }
}, 500);

function summarize() {
  if (streams.size === 0) {
    ui.summary.textContent = 'Not watching any channel.';
    ui.watchNote.textContent = '';
    return;
  }
  const byState = new Map();
  for (const s of streams.values()) byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
  const states = [...byState].map(([state, n]) => `${n} ${state}`).join(', ');
  ui.summary.textContent = `Watching ${watched.length} channel${watched.length === 1 ? '' : 's'}: ${states}.`;
  // Over HTTP/1.1 a browser opens at most six connections to a server, streams included.
  const nav = performance.getEntriesByType('navigation')[0];
  const http1 = nav?.nextHopProtocol === 'http/1.1';
  ui.watchNote.textContent =
    http1 && streams.size > 4
      ? `${streams.size} streams over HTTP/1.1: the browser opens at most 6 connections to this server, so the channel list and publishing may wait. Watch fewer channels, or reach the console over HTTP/2 (the nginx of docker compose).`
      : '';
}

// --- the rest of the page ------------------------------------------------------------------------

function suggestChannels() {
  const names = [...new Set([...watched, ...listed])].sort();
  ui.knownChannels.replaceChildren(
    ...names.map((n) => {
      const option = document.createElement('option');
      option.value = n;
      return option;
    }),
  );
}

function saveView() {
  const { from, after } = startChoice();
  writeView({
    channels: watched,
    from,
    after,
    q: ui.filterText.value,
    event: ui.filterEvent.value,
    max: view.max,
  });
}

function showPane(name) {
  ui.main.dataset.pane = name;
  for (const button of document.querySelectorAll('.pane-switch button')) {
    button.setAttribute('aria-pressed', String(button.dataset.pane === name));
  }
}

for (const button of document.querySelectorAll('.pane-switch button')) {
  button.addEventListener('click', () => showPane(button.dataset.pane));
}
// On a phone the events may be the hidden pane: show it before the link moves focus there.
document.querySelector('.skip').addEventListener('click', () => showPane('events'));

ui.watchForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const words = ui.watchChannels.value.split(/[\s,]+/).filter((w) => w !== '');
  const channels = splitNames(ui.watchChannels.value);
  const bad = words.filter((w) => !channels.includes(w));
  if (channels.length === 0 || bad.length > 0) {
    ui.watchChannels.setAttribute('aria-invalid', 'true');
    ui.watchNote.textContent =
      bad.length > 0
        ? `Not a channel name: ${bad.slice(0, 3).join(', ')} (1 to 128 of A-Z a-z 0-9 . _ : -).`
        : 'Name at least one channel (A-Z a-z 0-9 . _ : -).';
    return;
  }
  ui.watchChannels.removeAttribute('aria-invalid');
  watch(channels, true);
});
ui.watchForm.addEventListener('change', (e) => {
  if (e.target.name === 'from') saveView();
});
ui.afterId.addEventListener('input', () => {
  ui.watchForm.elements.namedItem('from').value = 'after';
});
ui.stop.addEventListener('click', () => {
  const channels = ui.watchChannels.value;
  watch([], true);
  ui.watchChannels.value = channels;
  summarize();
});
ui.filterText.addEventListener('input', () => {
  events.setFilter({ text: ui.filterText.value, event: ui.filterEvent.value });
  saveView();
});
ui.filterEvent.addEventListener('change', () => {
  events.setFilter({ text: ui.filterText.value, event: ui.filterEvent.value });
  saveView();
});
ui.pause.addEventListener('click', () => {
  const paused = ui.pause.getAttribute('aria-pressed') !== 'true';
  ui.pause.setAttribute('aria-pressed', String(paused));
  events.setPaused(paused);
  events.showStatus();
});
ui.clear.addEventListener('click', () => events.clear());

// --- from the URL ------------------------------------------------------------------------------

ui.watchForm.elements.namedItem('from').value = view.from;
ui.afterId.value = view.after;
ui.filterText.value = view.q;
events.setFilter({ text: view.q, event: view.event });
channelList.start();
if (view.channels.length > 0) watch(view.channels, true);
else ui.watchChannels.value = '';
summarize();
