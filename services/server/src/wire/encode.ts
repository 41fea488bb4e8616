// The SSE wire format (WHATWG HTML, "Server-sent events"), serialized once per event.
// A data string may hold any characters: it is split on CRLF, CR and LF into one `data:` line each,
// so a spec parser joins the lines with LF and gets the string back. CR and CRLF therefore come
// back as LF: the format's only lossy case. Event names must not hold CR, LF or NULL (checked by
// the callers; see validEventName).

const LINE_BREAK = /\r\n|\r|\n/;

/** True when `name` can be an event type: no CR, LF or NULL. */
export function validEventName(name: string): boolean {
  return !/[\r\n\0]/.test(name);
}

/** Frames one event as text: `event:`, then `data:` lines, then `id:`, then a blank line. */
export function encodeEvent(data: string, event?: string, id?: string | number): string {
  let out = event === undefined || event === '' ? '' : `event: ${event}\n`;
  if (LINE_BREAK.test(data)) {
    for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  } else {
    out += `data: ${data}\n`;
  }
  if (id !== undefined) out += `id: ${id}\n`;
  return `${out}\n`;
}

/**
 * The event name and data back from an event block made by encodeEvent (data lines joined with
 * LF, as a spec parser joins them).
 */
export function decodeEvent(payload: Buffer): { name: string | undefined; data: string } {
  let name: string | undefined;
  const data: string[] = [];
  for (const line of payload.toString('utf8').split('\n')) {
    if (line.startsWith('data: ')) data.push(line.slice(6));
    else if (line.startsWith('event: ')) name = line.slice(7);
  }
  return { name, data: data.join('\n') };
}

/** A `retry:` field on its own, as a block the parser applies without dispatching an event. */
export function encodeRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}

/**
 * A named notice with its reconnection delay in one block (`retry:`, `event:`, `data:` JSON, no
 * id, so the client keeps its Last-Event-ID): the refusal an EventSource can live with.
 */
export function encodeNotice(event: string, data: unknown, retryMs: number): string {
  return `retry: ${Math.max(0, Math.floor(retryMs))}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A comment block, ignored by parsers; used as the heartbeat. */
export const HEARTBEAT = Buffer.from(': ping\n\n');

const CRLF = 0x0a0d; // "\r\n" little-endian for writeUInt16LE

/**
 * One HTTP/1.1 chunk around a payload: `<hex length>\r\n<payload>\r\n`, in one buffer, so the
 * same bytes can go straight to every subscriber's socket with one write each.
 */
export function frameChunk(payload: Buffer): Buffer {
  const head = payload.length.toString(16);
  const out = Buffer.allocUnsafe(head.length + payload.length + 4);
  out.write(head, 0, 'latin1');
  out.writeUInt16LE(CRLF, head.length);
  payload.copy(out, head.length + 2);
  out.writeUInt16LE(CRLF, out.length - 2);
  return out;
}
