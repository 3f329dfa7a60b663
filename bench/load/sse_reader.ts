/**
 * A minimal SSE reader on a raw socket: de-chunks if needed, hands each event's id and data to a callback.
 * Cheap enough that 10,000 of them and the messages they carry do not make the load generator the bottleneck.
 */
import { connect, type Socket } from "node:net";

export interface SseReader {
  /** Resolves once the response headers arrived, with the status. */
  opened: Promise<number>;
  close(): void;
}

export function readSse(url: string, onEvent: (id: string | undefined, data: string) => void, lastEventId?: string): SseReader {
  const { hostname, port, pathname, search } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  socket.setEncoding("latin1");
  const resume = lastEventId === undefined ? "" : `Last-Event-ID: ${lastEventId}\r\n`;
  socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n${resume}\r\n`);
  let head: string | undefined;
  let chunked = false;
  let raw = "";
  let text = "";
  let resolveOpened!: (status: number) => void;
  let rejectOpened!: (error: Error) => void;
  const opened = new Promise<number>((resolve, reject) => {
    resolveOpened = resolve;
    rejectOpened = reject;
  });
  socket.on("error", (error) => rejectOpened(error));
  socket.on("close", () => rejectOpened(new Error("closed before the headers")));
  socket.on("data", (chunk: string) => {
    raw += chunk;
    if (head === undefined) {
      const end = raw.indexOf("\r\n\r\n");
      if (end < 0) return;
      head = raw.slice(0, end);
      raw = raw.slice(end + 4);
      chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
      resolveOpened(Number(head.slice(9, 12)));
    }
    if (chunked) {
      // latin1 keeps one character per byte, so chunk sizes can be counted in characters.
      for (;;) {
        const lineEnd = raw.indexOf("\r\n");
        if (lineEnd < 0) break;
        const start = lineEnd + 2;
        const size = parseInt(raw.slice(0, lineEnd), 16);
        if (raw.length < start + size + 2) break;
        text += raw.slice(start, start + size);
        raw = raw.slice(start + size + 2);
      }
    } else {
      text += raw;
      raw = "";
    }
    let end: number;
    while ((end = text.indexOf("\n\n")) >= 0) {
      const frame = text.slice(0, end);
      text = text.slice(end + 2);
      let id: string | undefined;
      let data: string | undefined;
      for (const line of frame.split("\n")) {
        if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (data !== undefined) onEvent(id, data);
    }
  });
  return { opened, close: () => socket.destroy() };
}
