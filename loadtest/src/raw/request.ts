// The GET an EventSource sends, written by hand for the raw-socket receivers (storm, the fan-out's
// `--receiver raw`, the restart storm): HTTP/1.1, Accept: text/event-stream, and Last-Event-ID
// when resuming. Built once per target URL and written as it is.

/** Where a raw subscriber connects: host and port of an http:// URL. */
export interface RawTarget {
  host: string;
  port: number;
}

export function rawTarget(url: URL): RawTarget {
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
}

/** The request bytes; `lastEventId` (when given) resumes after that id. */
export function eventStreamRequest(url: URL, lastEventId?: string): Buffer {
  const resume = lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`;
  return Buffer.from(
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n${resume}\r\n`,
    'latin1',
  );
}
