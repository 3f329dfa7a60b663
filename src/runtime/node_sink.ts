/** The Node stream sink: a stream's text written straight to a `node:http` response or to a bare socket. */
import { Buffer } from "node:buffer";
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { StreamSink } from "./types.ts";

/**
 * `node:http` frames what a response writes; on a bare socket the sink frames it itself (chunked, as
 * `node:http` would), and ends with the last chunk, after which `endConnection` lets the socket go.
 * A class, not an object of closures: every open stream keeps one, idle for hours.
 */
export class NodeSink implements StreamSink {
  readonly #output: ServerResponse | Socket;
  readonly #chunked: boolean;
  readonly #endConnection: ((socket: Socket) => void) | undefined;
  readonly #closing = new AbortController();
  /** The client hung up, or half-closed (it left: as a FIN during a stream ends it), while the stream was being prepared. */
  readonly #gone: boolean;

  constructor(output: ServerResponse | Socket, framing: "framed" | "chunked", endConnection?: (socket: Socket) => void) {
    this.#output = output;
    this.#chunked = framing === "chunked";
    this.#endConnection = endConnection;
    const closing = this.#closing;
    const close = () => closing.abort();
    // `on`, not `once`: "close" comes once, and `once` would keep a wrapper per stream.
    output.on("close", close);
    // A bare socket's client that half-closes has left (its connection ends after the FIN): from then on what the
    // stream writes would be dropped, yet counted delivered, until "close" came.
    if ("readableEnded" in output) output.on("end", close);
    // Gone already (or half-closed: a stream pipelined ahead of the FIN gets only its head), "close" (or "end") has
    // fired. Its abort comes a microtask later, so that what the stream's opening listens for on `closed` hears it (an
    // abort event is not replayed to a listener added after it: such a stream never ended, and stayed the agent's).
    this.#gone = output.closed || output.destroyed || ("readableEnded" in output && output.readableEnded);
    if (this.#gone) queueMicrotask(() => closing.abort());
  }

  get closed(): AbortSignal {
    return this.#closing.signal;
  }

  write(text: string): number {
    if (this.#gone || this.#closing.signal.aborted) return 0;
    // An empty chunk would be the last one: nothing to write is nothing written.
    if (text !== "") this.#output.write(this.#chunked ? `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n` : text);
    return this.#output.writableLength;
  }

  drained(): Promise<void> {
    const output = this.#output;
    const signal = this.#closing.signal;
    if (!output.writableNeedDrain || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        output.off("drain", done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      output.on("drain", done);
      signal.addEventListener("abort", done);
    });
  }

  close(): void {
    if (this.#gone || this.#closing.signal.aborted) return;
    this.#closing.abort();
    if (!this.#chunked) return void this.#output.end();
    this.#output.end("0\r\n\r\n");
    this.#endConnection?.(this.#output as Socket);
  }

  destroy(): void {
    this.#closing.abort();
    this.#output.destroy();
  }
}
