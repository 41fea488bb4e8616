// The publish form: POST /channels/<channel>/events with the publish token and an Idempotency-Key.
// The key field holds a fresh random key for each publish. After an answer that is final (202, or
// a 4xx other than 409) the next key is made; after a 503, a 409 or a network error the key stays,
// so pressing Publish again is a safe retry: the server stores the events at most once.
import { freshKey } from './format.js';

const RETRY_WITH_SAME_KEY = new Set([409, 429, 503]);

export class PublishForm {
  /** @param {{ form: HTMLFormElement, result: HTMLElement, onPublished: (channel: string) => void }} parts */
  constructor(parts) {
    this.parts = parts;
    const f = parts.form.elements;
    this.fields = {
      channel: f.namedItem('channel'),
      event: f.namedItem('event'),
      data: f.namedItem('data'),
      token: f.namedItem('token'),
      key: f.namedItem('idempotencyKey'),
      publish: parts.form.querySelector('button[type="submit"]'),
    };
    this.fields.key.value = freshKey();
    parts.form.querySelector('#new-key').addEventListener('click', () => {
      this.fields.key.value = freshKey();
    });
    this.fields.data.addEventListener('input', () =>
      this.fields.data.removeAttribute('aria-invalid'),
    );
    parts.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.publish();
    });
  }

  /** Suggests a channel (the first watched one) when the field is empty. */
  suggest(channel) {
    if (channel && this.fields.channel.value.trim() === '') this.fields.channel.value = channel;
  }

  say(text) {
    this.parts.result.textContent = text;
  }

  body() {
    const { event, data } = this.fields;
    const format = this.parts.form.elements.namedItem('format').value;
    let value = data.value;
    if (format === 'json') {
      try {
        value = JSON.parse(data.value);
      } catch (err) {
        data.setAttribute('aria-invalid', 'true');
        throw new Error(
          `the data is not valid JSON (${err.message}); choose Text to send it as it is`,
        );
      }
    }
    const name = event.value;
    return name === '' ? { data: value } : { event: name, data: value };
  }

  async publish() {
    const { channel, token, key, publish } = this.fields;
    const name = channel.value.trim();
    if (!channel.checkValidity() || name === '') {
      channel.setAttribute('aria-invalid', 'true');
      this.say('Not sent: a channel name is 1 to 128 of A-Z a-z 0-9 . _ : -');
      return;
    }
    channel.removeAttribute('aria-invalid');
    if (!key.checkValidity() || key.value === '') key.value = freshKey();
    let body;
    try {
      body = this.body();
    } catch (err) {
      this.say(`Not sent: ${err.message}.`);
      return;
    }
    const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': key.value };
    if (token.value) headers.Authorization = `Bearer ${token.value}`;
    publish.disabled = true;
    this.say('Publishing…');
    try {
      const res = await fetch(`/channels/${encodeURIComponent(name)}/events`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
      });
      const answer = await res.json().catch(() => ({}));
      if (res.ok) {
        const replayed = res.headers.get('idempotent-replayed') === 'true';
        const ids = (answer.ids ?? []).join(', ');
        this.say(
          replayed
            ? `Already published with this key: ids ${ids} (nothing new stored).`
            : `Published: id ${ids}, ${answer.subscribers ?? 0} subscriber(s) here.`,
        );
        key.value = freshKey();
        this.parts.onPublished(name);
      } else if (RETRY_WITH_SAME_KEY.has(res.status)) {
        this.say(
          `Not yet (${res.status} ${answer.error ?? ''}): ${answer.message ?? res.statusText}. Publish again to retry with the same key.`,
        );
      } else {
        this.say(
          `Refused (${res.status} ${answer.error ?? ''}): ${answer.message ?? res.statusText}.`,
        );
        key.value = freshKey();
      }
    } catch (err) {
      this.say(`Failed (${err.message}). Publish again to retry with the same key.`);
    } finally {
      publish.disabled = false;
    }
  }
}
