/**
 * A TCP relay between a client and the broker that the test can break the way networks break: freeze a
 * connection (nothing more reaches the client, what the broker sent waits in buffers), silence it (what the broker
 * sends is dropped without a reset), kill every connection and refuse new ones, then restore.
 */
import type { Socket } from "node:net";
import { startRelayServer } from "./relay_server.ts";

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Set when bytes from the broker are to be dropped instead of forwarded. */
  silenced: boolean;
}

export interface TcpRelay {
  url: string;
  /** Existing connections stop reading from the broker: what it wrote sits in the kernel's buffers. */
  freeze(): void;
  /** Existing connections drop what the broker sends, closing nothing: only a client's read timeout notices. */
  silence(): void;
  /** Cuts every connection, both sides, and refuses new ones until `restore()`. */
  kill(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpRelay(target: string): Promise<TcpRelay> {
  let down = false;
  const relay = await startRelayServer<Pair>(target, {
    refuse: () => down,
    wire(client, upstream) {
      const pair: Pair = { client, upstream, silenced: false };
      client.on("data", (chunk) => upstream.write(chunk));
      upstream.on("data", (chunk) => pair.silenced || client.write(chunk));
      return pair;
    },
  });
  const { pairs } = relay;
  return {
    url: `http://127.0.0.1:${relay.port}`,
    freeze: () => pairs.forEach((pair) => pair.upstream.pause()),
    silence: () => pairs.forEach((pair) => (pair.silenced = true)),
    kill() {
      down = true;
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
    },
    restore: () => void (down = false),
    close: () => relay.close(),
  };
}
