// The view in the URL: /?channel=a&channel=b&from=oldest (or from=<id>, or live when absent), plus
// the list's filters (q, event) and bound (max). Opening such a URL watches those channels.
import { DEFAULT_MAX_ENTRIES } from './events-view.js';

export const CHANNEL_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
export const EVENT_ID = /^\d{1,16}-\d{1,16}$/;

/**
 * @returns {{ channels: string[], from: 'live' | 'oldest' | 'after', after: string,
 *             q: string, event: string, max: number }}
 */
export function readView(search) {
  const params = new URLSearchParams(search);
  const channels = [];
  for (const value of params.getAll('channel')) {
    for (const name of splitNames(value)) if (!channels.includes(name)) channels.push(name);
  }
  const from = params.get('from') ?? 'live';
  const max = Number(params.get('max'));
  return {
    channels,
    from: from === 'oldest' ? 'oldest' : EVENT_ID.test(from) ? 'after' : 'live',
    after: EVENT_ID.test(from) ? from : '',
    q: params.get('q') ?? '',
    event: params.get('event') ?? '',
    max: Number.isInteger(max) && max >= 10 && max <= 100_000 ? max : DEFAULT_MAX_ENTRIES,
  };
}

/** Valid channel names from "a, b c", each once (invalid ones are left out). */
export function splitNames(text) {
  const names = text.split(/[\s,]+/).filter((n) => CHANNEL_NAME.test(n));
  return [...new Set(names)].slice(0, 100);
}

/** Puts the view in the address bar (replacing the entry: no history step per keystroke). */
export function writeView(view) {
  const params = new URLSearchParams();
  for (const c of view.channels) params.append('channel', c);
  if (view.from === 'oldest') params.set('from', 'oldest');
  if (view.from === 'after' && EVENT_ID.test(view.after)) params.set('from', view.after);
  if (view.q) params.set('q', view.q);
  if (view.event) params.set('event', view.event);
  if (view.max !== DEFAULT_MAX_ENTRIES) params.set('max', String(view.max));
  const query = params.toString();
  const url = query ? `/?${query}` : '/';
  if (url !== location.pathname + location.search) history.replaceState(null, '', url);
}
