// Public API of the http-sse client library.
export {
  ERROR_REASONS,
  SseClientError,
  type SseErrorReason,
} from './errors.ts';
export {
  type CloseReason,
  type CloseResult,
  type ConnectOptions,
  connectEventStream,
  type EventStreamHandle,
  type EventStreamIterable,
  type EventStreamOptions,
  type OpenInfo,
  openEventStream,
  type ReconnectInfo,
} from './event-stream.ts';
export { type ClientMetrics, createClientMetrics, startMetricsServer } from './metrics.ts';
export { createEventParser, type EventParser, type SseEvent } from './parser.ts';
export { ReconnectPolicy } from './reconnect.ts';
export { closeDefaultDispatchers, defaultDispatcher, isEventStreamType } from './transport.ts';
