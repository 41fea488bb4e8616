// The tRPC-Cpp http_sse example's contract, as the tests check it.

/** The status line and headers of /sse/test, in the example's order. */
export const EXAMPLE_HEADERS = [
  'Connection: keep-alive',
  'Content-Type: text/event-stream',
  'Cache-Control: no-cache',
  'Transfer-Encoding: chunked',
  'Access-Control-Allow-Origin: *',
  'Access-Control-Allow-Headers: Cache-Control',
];

/** The stream body for idx from..to-1. */
export function exampleBody(from = 0, to = 10): string {
  let out = '';
  for (let n = from; n < to; n++) {
    out += `event: message\ndata: {"msg": "hello", "idx": ${n}}\nid: ${n}\n\n`;
  }
  return out;
}

/** The client's output lines for idx from..to-1 (without "SSE stream finished"). */
export function exampleClientLines(from = 0, to = 10): string[] {
  const out: string[] = [];
  for (let n = from; n < to; n++) {
    out.push(`Received SSE event - id: ${n}, event: message, data: {"msg": "hello", "idx": ${n}}`);
  }
  return out;
}
