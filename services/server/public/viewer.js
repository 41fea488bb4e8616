// The viewer: one EventSource on this service's /sse/test or a channel, its state, its events and
// a publish form. Plain DOM, no framework; served with a CSP that allows only same-origin scripts.
const MAX_SHOWN = 500;
const ALWAYS_NAMES = ['reset', 'overloaded', 'unavailable', 'shutdown'];

const $ = (id) => document.getElementById(id);
const ui = {
  connectForm: $('connect-form'),
  testOptions: $('test-options'),
  channelOptions: $('channel-options'),
  count: $('count'),
  interval: $('interval'),
  channel: $('channel'),
  names: $('names'),
  subscribeToken: $('subscribe-token'),
  credentials: $('credentials'),
  connect: $('connect'),
  disconnect: $('disconnect'),
  clear: $('clear'),
  state: $('state'),
  countOut: $('count-out'),
  rate: $('rate'),
  reconnects: $('reconnects'),
  lastId: $('last-id'),
  resets: $('resets'),
  streamUrl: $('stream-url'),
  events: $('events'),
  publishForm: $('publish-form'),
  publishChannel: $('publish-channel'),
  publishEvent: $('publish-event'),
  publishData: $('publish-data'),
  publishToken: $('publish-token'),
  publishResult: $('publish-result'),
};

let source = null;
let listening = new Set();
const stats = { events: 0, reconnects: 0, resets: 0, windowEvents: 0 };

function setState(state) {
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  const active = state === 'connecting' || state === 'open' || state === 'reconnecting';
  ui.disconnect.disabled = !active;
}

function showStats() {
  ui.countOut.textContent = String(stats.events);
  ui.reconnects.textContent = String(stats.reconnects);
  ui.resets.textContent = String(stats.resets);
}

function selectedSource() {
  return ui.connectForm.elements.source.value;
}

function showSourceOptions() {
  const channel = selectedSource() === 'channel';
  ui.channelOptions.hidden = !channel;
  ui.testOptions.hidden = channel;
}

function streamUrl() {
  const url = new URL(location.origin);
  if (selectedSource() === 'channel') {
    url.pathname = `/sse/channels/${encodeURIComponent(ui.channel.value.trim())}`;
    const token = ui.subscribeToken.value;
    if (token) url.searchParams.set('access_token', token);
  } else {
    url.pathname = '/sse/test';
    url.searchParams.set('count', ui.count.value || '10');
    url.searchParams.set('interval_ms', ui.interval.value || '1000');
  }
  return url;
}

function appendEntry(className, build) {
  const li = document.createElement('li');
  if (className) li.className = className;
  build(li);
  ui.events.append(li);
  while (ui.events.childElementCount > MAX_SHOWN) ui.events.firstElementChild.remove();
  li.scrollIntoView({ block: 'nearest' });
}

function showEvent(e) {
  stats.events++;
  stats.windowEvents++;
  if (e.type === 'reset') stats.resets++;
  if (e.lastEventId) ui.lastId.textContent = e.lastEventId;
  showStats();
  const notice = e.type === 'overloaded' || e.type === 'unavailable' || e.type === 'shutdown';
  const kind = e.type === 'reset' ? 'event reset' : notice ? 'event notice' : 'event';
  appendEntry(kind, (li) => {
    li.dataset.id = e.lastEventId;
    li.dataset.event = e.type;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = e.type;
    meta.append(name, ` id=${e.lastEventId || '–'} · ${e.data.length} chars`);
    const data = document.createElement('pre');
    data.className = 'data';
    data.textContent = e.data;
    li.append(meta, data);
  });
}

function showStatus(text) {
  appendEntry('status', (li) => {
    li.textContent = text;
  });
}

function listen(name) {
  if (!source || !name || listening.has(name)) return;
  listening.add(name);
  source.addEventListener(name, showEvent);
}

function disconnect() {
  if (source) {
    source.close();
    source = null;
    setState('closed');
    showStatus('disconnected');
  }
}

function connect() {
  disconnect();
  const url = streamUrl();
  ui.streamUrl.textContent =
    url.pathname + url.search.replace(/access_token=[^&]*/, 'access_token=…');
  setState('connecting');
  source = new EventSource(url, { withCredentials: ui.credentials.checked });
  listening = new Set();
  const es = source;
  es.onopen = () => {
    if (es === source) setState('open');
  };
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CLOSED) {
      setState('closed');
      showStatus('closed: the server refused or ended the stream for good');
    } else {
      stats.reconnects++;
      showStats();
      setState('reconnecting');
    }
  };
  listen('message');
  for (const name of ALWAYS_NAMES) listen(name);
  for (const name of ui.names.value.split(',')) listen(name.trim());
}

async function publish() {
  const channel = ui.publishChannel.value.trim();
  const event = ui.publishEvent.value.trim();
  const body = event ? { event, data: ui.publishData.value } : { data: ui.publishData.value };
  if (event) listen(event);
  ui.publishResult.textContent = 'publishing…';
  try {
    const res = await fetch(`/channels/${encodeURIComponent(channel)}/events`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${ui.publishToken.value}`,
      },
      body: JSON.stringify(body),
    });
    const answer = await res.json().catch(() => ({}));
    ui.publishResult.textContent = res.ok
      ? `published: ids ${(answer.ids ?? []).join(', ')}, ${answer.subscribers ?? 0} subscriber(s)`
      : `refused (${res.status}): ${answer.message ?? res.statusText}`;
  } catch (err) {
    ui.publishResult.textContent = `failed: ${err.message}`;
  }
}

ui.connectForm.addEventListener('change', (e) => {
  if (e.target.name === 'source') showSourceOptions();
});
ui.connectForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!ui.connectForm.reportValidity()) return;
  stats.reconnects = 0;
  showStats();
  connect();
});
ui.disconnect.addEventListener('click', disconnect);
ui.clear.addEventListener('click', () => {
  ui.events.replaceChildren();
  stats.events = 0;
  stats.resets = 0;
  showStats();
});
ui.channel.addEventListener('input', () => {
  ui.publishChannel.value = ui.channel.value;
});
ui.publishForm.addEventListener('submit', (e) => {
  e.preventDefault();
  publish();
});

setInterval(() => {
  ui.rate.textContent = String(stats.windowEvents);
  stats.windowEvents = 0;
}, 1000);

const params = new URLSearchParams(location.search);
if (params.get('channel')) {
  ui.connectForm.elements.source.value = 'channel';
  ui.channel.value = params.get('channel');
  ui.publishChannel.value = params.get('channel');
}
showSourceOptions();
setState('idle');
