/**
 * A cheap HTTP client for publishing: one raw socket, requests written by hand, keep-alive when the server allows it and a
 * new connection when it does not (the old bridge speaks HTTP/1.0). Requests sent before the previous answer are
 * pipelined: the answers come back in request order (on a keep-alive connection).
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";

export class Connection {
  #host: string;
  #port: number;
  #socket: Socket | undefined;
  #buffer = "";
  /**
   * The answer at the front of the buffer, once its head is read: its head and where it ends (a chunked body's
   * end is searched only in what arrived since the last look). Parsed once, not on every chunk of the body: with
   * a 190 KB `/status` body the load tool's own string copies and their GC were most of the time it measured.
   */
  #current: { head: string; end: number | undefined; searchFrom: number } | undefined;
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
    const socket = connect(this.#port, this.#host);
    socket.setNoDelay(true).setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      while (this.#answer(socket));
    });
    const fail = (error: Error) => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#buffer = "";
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
      const head = this.#buffer.slice(0, headEnd);
      // Small chunked bodies: the response ends with the last, empty chunk.
      const end = /\r\ntransfer-encoding: *chunked/i.test(head)
        ? undefined
        : headEnd + 4 + Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      this.#current = { head, end, searchFrom: headEnd + 4 };
    }
    const { head } = this.#current;
    let end = this.#current.end;
    if (end === undefined) {
      const last = this.#buffer.indexOf("0\r\n\r\n", this.#current.searchFrom);
      if (last < 0) {
        this.#current.searchFrom = Math.max(this.#current.searchFrom, this.#buffer.length - 4);
        return false;
      }
      end = last + 5;
    } else if (this.#buffer.length < end) return false;
    this.#current = undefined;
    this.#buffer = this.#buffer.slice(end);
    const keepAlive = head.startsWith("HTTP/1.1") && !/\r\nconnection: *close/i.test(head);
    if (!keepAlive) {
      socket.removeAllListeners("close");
      socket.destroy();
      this.#socket = undefined;
    }
    this.#pending.shift()?.resolve(Number(head.slice(9, 12)));
    if (!keepAlive) for (const request of this.#pending.splice(0)) request.reject(new Error("connection closed before the response"));
    return keepAlive;
  }
}
