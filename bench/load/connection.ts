/**
 * A cheap HTTP client for publishing: one raw socket, requests written by hand, keep-alive when the server allows it and a
 * new connection when it does not (the old bridge speaks HTTP/1.0). One request in flight at a time.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";

export class Connection {
  #host: string;
  #port: number;
  #socket: Socket | undefined;
  #buffer = "";
  #pending: { resolve(status: number): void; reject(error: Error): void } | undefined;

  constructor(url: string) {
    const { hostname, port } = new URL(url);
    this.#host = hostname;
    this.#port = Number(port);
  }

  /** Sends one request; resolves with the status once the whole response is read. */
  request(method: "GET" | "POST", path: string, body = "", contentType = "application/json"): Promise<number> {
    const socket = this.#socket ?? this.#connect();
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
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
      this.#parse(socket);
    });
    const fail = (error: Error) => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#buffer = "";
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(error);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed before the response")));
    this.#socket = socket;
    return socket;
  }

  #parse(socket: Socket): void {
    const headEnd = this.#buffer.indexOf("\r\n\r\n");
    if (headEnd < 0) return;
    const head = this.#buffer.slice(0, headEnd);
    let end: number;
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      // Small bodies: the response ends with the last, empty chunk.
      const last = this.#buffer.indexOf("0\r\n\r\n", headEnd + 4);
      if (last < 0) return;
      end = last + 5;
    } else {
      end = headEnd + 4 + Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (this.#buffer.length < end) return;
    }
    this.#buffer = this.#buffer.slice(end);
    const keepAlive = head.startsWith("HTTP/1.1") && !/\r\nconnection: *close/i.test(head);
    if (!keepAlive) {
      socket.removeAllListeners("close");
      socket.destroy();
      this.#socket = undefined;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.resolve(Number(head.slice(9, 12)));
  }
}
