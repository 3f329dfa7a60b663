/** The Node stream sink: a stream's text written straight to a `node:http` response or to a bare socket. */
import { Buffer } from "node:buffer";
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { StreamSink } from "./types.ts";

/**
 * `node:http` frames what a response writes; on a bare socket the sink frames it itself (chunked, as
 * `node:http` would), and ends with the last chunk, after which `endConnection` lets the socket go.
 */
export function nodeSink(
  output: ServerResponse | Socket,
  framing: "framed" | "chunked",
  endConnection?: (socket: Socket) => void,
): StreamSink {
  const chunked = framing === "chunked";
  const closing = new AbortController();
  output.once("close", () => closing.abort());
  // The client may have hung up while the stream was being prepared: then "close" has already fired. Its abort
  // comes a microtask later, so that what the stream's opening listens for on `closed` hears it (an abort event is
  // not replayed to a listener added after it: such a stream never ended, and stayed the agent's stream).
  const gone = output.closed || output.destroyed;
  if (gone) queueMicrotask(() => closing.abort());
  return {
    write(text) {
      if (gone || closing.signal.aborted) return 0;
      // An empty chunk would be the last one: nothing to write is nothing written.
      if (text !== "") output.write(chunked ? `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n` : text);
      return output.writableLength;
    },
    drained() {
      if (!output.writableNeedDrain || closing.signal.aborted) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          output.off("drain", done);
          closing.signal.removeEventListener("abort", done);
          resolve();
        };
        output.on("drain", done);
        closing.signal.addEventListener("abort", done);
      });
    },
    close() {
      if (gone || closing.signal.aborted) return;
      closing.abort();
      if (!chunked) return void output.end();
      output.end("0\r\n\r\n");
      endConnection?.(output as Socket);
    },
    destroy() {
      closing.abort();
      output.destroy();
    },
    closed: closing.signal,
  };
}
