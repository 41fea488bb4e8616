// An HTTP/1.1 response read off a raw socket, incrementally: the status line and headers, then the
// body by its framing (chunked, Content-Length, or until the connection closes), handed on as byte
// slices. Bytes may arrive split anywhere. Broken framing throws an HttpFramingError.

export class HttpFramingError extends Error {
  override name = 'HttpFramingError';
}

export interface ResponseHandler {
  /** The status code and headers (names lower-cased). */
  onHead(status: number, headers: Record<string, string>): void;
  /** A slice of the body (a view of the socket's buffer: use it before returning). */
  onBody(bytes: Buffer): void;
  /** The body is complete (the last chunk, or Content-Length reached). */
  onEnd(): void;
}

type State = 'head' | 'size' | 'data' | 'data-crlf' | 'trailers' | 'length' | 'close' | 'done';

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
/** A head or chunk-size line longer than this is not a response we can read. */
const MAX_LINE = 64 * 1024;

/** `HTTP/1.x NNN reason` and the header lines, from the head's bytes (without the blank line). */
function parseHead(text: string): { status: number; headers: Record<string, string> } {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) throw new HttpFramingError(`bad status line ${JSON.stringify(lines[0]?.slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpFramingError(`bad header line ${JSON.stringify(line)}`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(m[1]), headers };
}

/** A chunk-size line (`<hex>[;ext]`) as a number. */
function chunkSize(line: string): number {
  const hex = line.split(';', 1)[0]!.trim();
  if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
    throw new HttpFramingError(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
  }
  return Number.parseInt(hex, 16);
}

export class HttpResponseParser {
  private state: State = 'head';
  /** Bytes of an unfinished head, chunk-size or trailer line (or CRLF after a chunk). */
  private partial: Buffer = Buffer.alloc(0);
  /** Bytes left in the current chunk or Content-Length body. */
  private remaining = 0;
  private readonly handler: ResponseHandler;

  constructor(handler: ResponseHandler) {
    this.handler = handler;
  }

  /** True once the body is complete. */
  get done(): boolean {
    return this.state === 'done';
  }

  feed(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length && this.state !== 'done') at = this.step(bytes, at);
    if (at < bytes.length) throw new HttpFramingError('bytes after the end of the response');
  }

  /**
   * The connection closed: the end of a close-delimited body. False when the response was cut
   * short instead (closed before its head, its last chunk or its Content-Length).
   */
  close(): boolean {
    if (this.state === 'close') this.finish();
    return this.state === 'done';
  }

  /** Consumes bytes from `at` in the current state; returns where the next state starts. */
  private step(bytes: Buffer, at: number): number {
    switch (this.state) {
      case 'head':
        return this.untilDelimiter(bytes, at, HEAD_END, (line) => this.head(line));
      case 'size':
        return this.untilDelimiter(bytes, at, CRLF, (line) => this.size(line));
      case 'trailers':
        return this.untilDelimiter(bytes, at, CRLF, (line) => this.trailer(line));
      case 'data-crlf':
        return this.chunkEnd(bytes, at);
      case 'close':
        this.handler.onBody(bytes.subarray(at));
        return bytes.length;
      default:
        return this.body(bytes, at);
    }
  }

  /**
   * Collects bytes up to `delimiter` (which may itself be split over feeds), then calls `line`
   * with the text before it (latin1). Returns the position after the delimiter, or the end.
   */
  private untilDelimiter(
    bytes: Buffer,
    at: number,
    delimiter: Buffer,
    line: (text: string) => void,
  ): number {
    const carried = this.partial.length;
    const joined = carried > 0 ? Buffer.concat([this.partial, bytes.subarray(at)]) : bytes;
    const from = carried > 0 ? 0 : at;
    const end = joined.indexOf(delimiter, from);
    if (end < 0) {
      this.partial = Buffer.from(joined.subarray(from));
      if (this.partial.length > MAX_LINE) throw new HttpFramingError(`line over ${MAX_LINE} bytes`);
      return bytes.length;
    }
    this.partial = Buffer.alloc(0);
    line(joined.toString('latin1', from, end));
    // Where the delimiter ends, in `bytes`' own positions.
    return carried > 0 ? at + end + delimiter.length - carried : end + delimiter.length;
  }

  private head(text: string): void {
    const { status, headers } = parseHead(text);
    if (status >= 100 && status < 200) return; // an interim answer: the real head follows
    this.handler.onHead(status, headers);
    const length = headers['content-length'];
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) this.state = 'size';
    else if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw new HttpFramingError(`bad Content-Length ${length}`);
      this.remaining = Number(length);
      this.state = 'length';
      if (this.remaining === 0) this.finish();
    } else if (status === 204 || status === 304) this.finish();
    else this.state = 'close';
  }

  private size(line: string): void {
    this.remaining = chunkSize(line);
    this.state = this.remaining === 0 ? 'trailers' : 'data';
  }

  private trailer(line: string): void {
    if (line === '') this.finish();
  }

  /** Chunk or Content-Length bytes: handed on as they come. */
  private body(bytes: Buffer, at: number): number {
    const end = Math.min(bytes.length, at + this.remaining);
    this.remaining -= end - at;
    this.handler.onBody(bytes.subarray(at, end));
    if (this.remaining === 0) {
      if (this.state === 'length') this.finish();
      else this.state = 'data-crlf';
    }
    return end;
  }

  /** The CRLF after a chunk's data, byte by byte (it may be split): anything else is an error. */
  private chunkEnd(bytes: Buffer, at: number): number {
    let i = at;
    while (i < bytes.length && this.partial.length < 2) {
      const want = CRLF[this.partial.length]!;
      if (bytes[i] !== want) throw new HttpFramingError('chunk data not followed by CRLF');
      this.partial = CRLF.subarray(0, this.partial.length + 1);
      i++;
    }
    if (this.partial.length === 2) {
      this.partial = Buffer.alloc(0);
      this.state = 'size';
    }
    return i;
  }

  private finish(): void {
    this.state = 'done';
    this.handler.onEnd();
  }
}
