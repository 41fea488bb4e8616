// Small formatting helpers: times, sizes, JSON data.

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** A local wall-clock time with milliseconds: 14:03:07.512. */
export function clockTime(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** Bytes as B, KiB or MiB. */
export function byteSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Whole numbers with thousands separators. */
export function count(n) {
  return n.toLocaleString('en');
}

/** Seconds from milliseconds, one decimal: 4.1 s. */
export function seconds(ms) {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

const encoder = new TextEncoder();

/** The UTF-8 size of a string. */
export function utf8Bytes(text) {
  // ASCII-only strings (the common case) need no encoding pass.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  return /^[\x00-\x7f]*$/.test(text) ? text.length : encoder.encode(text).length;
}

/**
 * The data as shown: JSON objects and arrays pretty-printed (two spaces), anything else as it is.
 * @returns {{ text: string, json: boolean }}
 */
export function shownData(data) {
  const first = data.trimStart()[0];
  if (first === '{' || first === '[') {
    try {
      return { text: JSON.stringify(JSON.parse(data), null, 2), json: true };
    } catch {
      // not JSON after all
    }
  }
  return { text: data, json: false };
}

/** "a minute ago"-style age of an ISO time, for the channel list. */
export function age(iso, now = Date.now()) {
  if (!iso) return 'never';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 2) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** A random Idempotency-Key (a UUID; visible ASCII, as the server requires). */
export function freshKey() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
