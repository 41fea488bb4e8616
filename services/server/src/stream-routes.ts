// The event-stream routes, by the path pattern that labels their metrics and logs.
export const STREAM_ROUTES = ['/sse/test', '/sse/channels/:channel'] as const;
export type StreamRoute = (typeof STREAM_ROUTES)[number];
