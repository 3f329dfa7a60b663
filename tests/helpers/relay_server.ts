/**
 * What the tests' TCP relays share: a server on a free port of 127.0.0.1 that joins each client to a fresh
 * connection to the target, and closes both sides when either closes.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface RelayServer<P> {
  port: number;
  /** The joined connections open now. */
  pairs: Set<P>;
  /** Closes every connection, both sides, then the server. */
  close(): Promise<void>;
}

export interface RelayWiring<P> {
  /** Whether to refuse a new client (closed at once, no connection made to the target). */
  refuse?(): boolean;
  /** Forwards between the two sockets as the relay does; returns what it keeps of the pair. */
  wire(client: Socket, upstream: Socket): P;
}

export async function startRelayServer<P extends { client: Socket; upstream: Socket }>(
  target: string,
  wiring: RelayWiring<P>,
): Promise<RelayServer<P>> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<P>();
  const server: Server = createServer((client) => {
    client.on("error", () => {});
    if (wiring.refuse?.()) return void client.destroy();
    const upstream = connect(Number(port), hostname);
    upstream.on("error", () => {});
    const pair = wiring.wire(client, upstream);
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.once("close", end);
    upstream.once("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    pairs,
    close() {
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
