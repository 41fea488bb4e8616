// The server's explanation of a refused stream: a bounded, time-limited read of a non-200 response
// body, reduced to one printable line (the JSON `message` when there is one, else the text).
import { StringDecoder } from 'node:string_decoder';

/** Most bytes of an error body shown in an error message. */
export const ERROR_TEXT_BYTES = 200;
/** Most bytes read from an error body (room for a JSON object with a `message`). */
export const ERROR_BODY_READ_BYTES = 4096;
/** How long to wait for the error body before giving up on the rest. */
export const ERROR_BODY_TIMEOUT_MS = 2000;

interface BodyStream {
  readonly destroyed?: boolean;
  readonly readableEnded?: boolean;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  once(event: 'end' | 'close' | 'error', fn: () => void): unknown;
  off(event: 'data', fn: (chunk: Buffer) => void): unknown;
}

/**
 * Collects up to `maxBytes` of `body`, until it ends, fails or `timeoutMs` passes, whichever is
 * first. Never rejects; the caller destroys the body afterwards.
 */
export function readBounded(
  body: BodyStream,
  maxBytes = ERROR_BODY_READ_BYTES,
  timeoutMs = ERROR_BODY_TIMEOUT_MS,
): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      body.off('data', onData);
      resolve(Buffer.concat(chunks).subarray(0, maxBytes));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= maxBytes) finish();
    };
    if (body.destroyed || body.readableEnded) {
      resolve(Buffer.alloc(0)); // nothing more will come: do not wait for the timeout
      return;
    }
    const timer = setTimeout(finish, timeoutMs);
    body.on('data', onData);
    body.once('end', finish);
    body.once('close', finish);
    body.once('error', finish);
  });
}

/** One line: control characters and runs of white space become one space; trimmed. */
export function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters
  return text.replace(/[\s\x00-\x1f\x7f-\x9f]+/g, ' ').trim();
}

/** The first `maxBytes` of UTF-8 `bytes` as text, never ending in a split character. */
function utf8Prefix(bytes: Uint8Array, maxBytes: number): string {
  return new StringDecoder('utf8').write(Buffer.from(bytes.subarray(0, maxBytes)));
}

/**
 * The explanation in an error body: its JSON `message` (a string) when the body is such a JSON
 * object, else its first ERROR_TEXT_BYTES bytes; one line, "" when there is nothing to show.
 */
export function explainErrorBody(bytes: Uint8Array): string {
  const text = Buffer.from(bytes).toString('utf8');
  try {
    const parsed = JSON.parse(text) as { message?: unknown } | null;
    if (typeof parsed?.message === 'string') {
      return oneLine(utf8Prefix(Buffer.from(parsed.message, 'utf8'), ERROR_TEXT_BYTES));
    }
  } catch {
    // not JSON (or cut short by the read bound): show the text itself
  }
  return oneLine(utf8Prefix(bytes, ERROR_TEXT_BYTES));
}
