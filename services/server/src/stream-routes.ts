// The event-stream routes, by the path pattern that labels their metrics and logs, and why a
// stream ends (sse_stream_ends_total{reason}).
export const STREAM_ROUTES = ['/sse/test', '/sse/channels/:channel', '/sse/streams'] as const;
export type StreamRoute = (typeof STREAM_ROUTES)[number];

export const CLOSE_REASONS = [
  'complete',
  'client',
  'slow_consumer',
  'shutdown',
  'token_expired',
  'error',
] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];
