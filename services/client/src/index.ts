// Public API of the http-sse client library.
export {
  CONNECTION_ERROR_REASONS,
  ERROR_REASONS,
  PublishError,
  type PublishErrorOptions,
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
export {
  CHANNEL_NAME,
  IDEMPOTENCY_KEY,
  type PublishEvent,
  type PublishOptions,
  type PublishResult,
  publish,
} from './publish.ts';
export { ReconnectPolicy } from './reconnect.ts';
export { isMultiChannelUrl, unwrapEnvelope } from './stream-envelope.ts';
export { closeDefaultDispatchers, defaultDispatcher, isEventStreamType } from './transport.ts';
