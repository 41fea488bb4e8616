// The CLI's two output formats. Text: one human-readable line per event, then
// "SSE stream finished", all on stdout. JSON (--json): stdout carries exactly one JSON object per
// event and nothing else; every other message goes to stderr.
import type { SseEvent } from './parser.ts';

export type OutputMode = 'text' | 'json';

export interface OutputSink {
  write(text: string): unknown;
}

export interface Output {
  event(event: SseEvent): void;
  /** The server ended the stream (or answered 204). */
  finished(): void;
  /** A diagnostic line (always stderr). */
  info(message: string): void;
}

export function formatText(event: SseEvent): string {
  const line = `Received SSE event - id: ${event.id}, event: ${event.event}, data: ${event.data}`;
  return event.channel === undefined ? line : `${line}, channel: ${event.channel}`;
}

/** One JSON object per event; events of a several-channel stream also name their channel. */
export function formatJson(event: SseEvent): string {
  const { id, event: name, data, channel } = event;
  return JSON.stringify(
    channel === undefined ? { id, event: name, data } : { id, event: name, data, channel },
  );
}

export const FINISHED = 'SSE stream finished';

export function createOutput(mode: OutputMode, stdout: OutputSink, stderr: OutputSink): Output {
  const format = mode === 'json' ? formatJson : formatText;
  const notices = mode === 'json' ? stderr : stdout;
  return {
    event(event) {
      stdout.write(`${format(event)}\n`);
    },
    finished() {
      notices.write(`${FINISHED}\n`);
    },
    info(message) {
      stderr.write(`${message}\n`);
    },
  };
}
