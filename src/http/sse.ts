/** Server-Sent Events framing: the bytes the broker writes on a stream. */

/** One SSE event; `data` may span lines, each becomes its own `data:` field. */
export interface ServerSentEvent {
  id?: string | number;
  event?: string;
  data: string;
}

const LINE_BREAK = /\r\n|\r|\n/;

/**
 * Encodes one event, ending with the blank line that dispatches it.
 *
 * @example
 * ```ts
 * encodeEvent({ id: 7, data: '{"a":1}' }); // 'id: 7\ndata: {"a":1}\n\n'
 * ```
 */
export function encodeEvent(event: ServerSentEvent): string {
  let frame = "";
  if (event.id !== undefined) frame += `id: ${singleLine("id", String(event.id))}\n`;
  if (event.event !== undefined) frame += `event: ${singleLine("event", event.event)}\n`;
  // JSON text never holds a raw line break: one data line, without splitting.
  if (!event.data.includes("\n") && !event.data.includes("\r")) return `${frame}data: ${event.data}\n\n`;
  for (const line of event.data.split(LINE_BREAK)) frame += `data: ${line}\n`;
  return frame + "\n";
}

/** A comment line (`: text`), ignored by clients; used as the heartbeat. */
export function encodeComment(text: string): string {
  return text.split(LINE_BREAK).map((line) => `: ${line}\n`).join("") + "\n";
}

/** The `retry:` field telling EventSource clients how long to wait before reconnecting. */
export function encodeRetry(milliseconds: number): string {
  if (!Number.isSafeInteger(milliseconds) || milliseconds < 0) {
    throw new RangeError(`Cannot encode retry: ${milliseconds} is not a non-negative integer`);
  }
  return `retry: ${milliseconds}\n\n`;
}

function singleLine(field: string, value: string): string {
  if (LINE_BREAK.test(value) || value.includes("\0")) {
    throw new TypeError(`Cannot serialize event: "${field}" cannot contain a newline or NUL`);
  }
  return value;
}
