/**
 * A cheap HTTP client for publishing: one raw socket, requests written by hand, keep-alive when the server allows it and a
 * new connection when it does not (the old bridge speaks HTTP/1.0). Requests sent before the previous answer are
 * pipelined: the answers come back in request order (on a keep-alive connection).
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";

/** Bytes per read: a 190 KB answer arrives in a few reads. */
const READ_BUFFER = 64 * 1024;

export class Connection {
  #host: string;
  #port: number;
  #socket: Socket | undefined;
  /** Bytes read and not consumed yet: an answer's head while it arrives, or a chunked body until its last chunk. */
  #buffer: Buffer = Buffer.alloc(0);
  /**
   * The answer being read, once its head is: its status, whether the connection stays open, and how many bytes of
   * its Content-Length body are still to come (undefined: chunked; its end is searched only in what arrived since
   * the last look). A Content-Length body is counted and dropped, never kept or decoded.
   */
  #current: { status: number; keepAlive: boolean; remaining: number | undefined; searchFrom: number } | undefined;
  /** The requests sent and not answered yet, oldest first. */
  #pending: { resolve(status: number): void; reject(error: Error): void }[] = [];

  constructor(url: string) {
    const { hostname, port } = new URL(url);
    this.#host = hostname;
    this.#port = Number(port);
  }

  /** Sends one request; resolves with the status once the whole response is read. */
  request(method: "GET" | "POST", path: string, body = "", contentType = "application/json"): Promise<number> {
    const socket = this.#socket ?? this.#connect();
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: ${this.#host}\r\nContent-Type: ${contentType}\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #connect(): Socket {
    // Read into one buffer of the connection's own, again and again: a 190 KB `/status` answer read as strings
    // was joined and copied on the load tool's heap (a scavenge every ~10 ms, up to 22 ms each, inside the requests
    // it timed), and read as a new Buffer per chunk it was external memory that set off major GCs instead.
    const readBuffer = Buffer.alloc(READ_BUFFER);
    const socket = connect({
      port: this.#port,
      host: this.#host,
      onread: {
        buffer: readBuffer,
        callback: (length: number): boolean => {
          const chunk = readBuffer.subarray(0, length);
          this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
          while (this.#answer(socket));
          // What is left (part of a head, a chunked body) is kept as a copy: the next read overwrites the buffer.
          if (this.#buffer.buffer === readBuffer.buffer) this.#buffer = Buffer.from(this.#buffer);
          return true;
        },
      },
    });
    socket.setNoDelay(true);
    const fail = (error: Error) => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#buffer = Buffer.alloc(0);
      this.#current = undefined;
      const pending = this.#pending;
      this.#pending = [];
      for (const request of pending) request.reject(error);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed before the response")));
    this.#socket = socket;
    return socket;
  }

  /** Reads one whole answer from the buffer, if there is one. */
  #answer(socket: Socket): boolean {
    if (this.#current === undefined) {
      const headEnd = this.#buffer.indexOf("\r\n\r\n");
      if (headEnd < 0) return false;
      const head = this.#buffer.toString("latin1", 0, headEnd);
      this.#buffer = this.#buffer.subarray(headEnd + 4);
      this.#current = {
        status: Number(head.slice(9, 12)),
        keepAlive: head.startsWith("HTTP/1.1") && !/\r\nconnection: *close/i.test(head),
        // Small chunked bodies: the response ends with the last, empty chunk.
        remaining: /\r\ntransfer-encoding: *chunked/i.test(head) ? undefined : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0),
        searchFrom: 0,
      };
    }
    const current = this.#current;
    if (current.remaining !== undefined) {
      const counted = Math.min(current.remaining, this.#buffer.length);
      current.remaining -= counted;
      this.#buffer = this.#buffer.subarray(counted);
      if (current.remaining > 0) return false;
    } else {
      const last = this.#buffer.indexOf("0\r\n\r\n", current.searchFrom);
      if (last < 0) {
        current.searchFrom = Math.max(current.searchFrom, this.#buffer.length - 4);
        return false;
      }
      this.#buffer = this.#buffer.subarray(last + 5);
    }
    this.#current = undefined;
    if (!current.keepAlive) {
      socket.removeAllListeners("close");
      socket.destroy();
      this.#socket = undefined;
    }
    this.#pending.shift()?.resolve(current.status);
    if (!current.keepAlive) for (const request of this.#pending.splice(0)) request.reject(new Error("connection closed before the response"));
    return current.keepAlive;
  }
}
