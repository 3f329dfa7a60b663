/** A raw TCP client for attack tests: it sends exactly the bytes it is given and records what comes back. */
import { connect, type Socket } from "node:net";

export interface RawClient {
  readonly socket: Socket;
  /** Everything the broker sent so far, as latin1 text. */
  received(): string;
  /** Whether the broker closed the connection (or at least its side of it), or the test did. */
  closed(): boolean;
  /** Sends `text` now and then one more byte every `everyMs` (a trickle that never ends), until the connection goes. */
  trickle(text: string, everyMs: number): void;
}

/** Connects to the broker at `url` and sends `bytes`; the caller destroys the socket (register it before awaiting). */
export function rawClient(url: string, bytes = "", onOpen?: (client: RawClient) => void): Promise<RawClient> {
  const { hostname, port } = new URL(url);
  // Half-open allowed: a client that keeps its end open after the broker's FIN is one of the attacks.
  const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
  let received = "";
  let closed = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const close = () => {
    closed = true;
    clearInterval(timer);
  };
  socket.on("error", () => {}).on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.once("end", close).once("close", close);
  const client: RawClient = {
    socket,
    received: () => received,
    closed: () => closed,
    trickle(text, everyMs) {
      socket.write(text);
      timer = setInterval(() => socket.destroyed || socket.write("a"), everyMs);
    },
  };
  onOpen?.(client);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      if (bytes !== "") socket.write(bytes);
      resolve(client);
    }).once("error", reject);
  });
}
