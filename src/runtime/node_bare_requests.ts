/**
 * Plain requests (GETs, and POSTs with a declared length) are read and answered on the bare socket; at a
 * connection's first request that is anything else, the connection goes to `node:http` for good. Why: for the
 * broker's two hot paths `node:http` is most of the cost. A stream served through it keeps its parser and its
 * request and response objects for as long as it is open (~13 KiB per idle stream on top of the socket's own
 * ~4 KiB, at 10,000 idle streams on Node 24); and a bare server on `node:net` spent 14-15 µs of CPU per
 * published and delivered message where the same on `node:http` spent 31-32 (the benchmark's throughput load).
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";
import { BareConnection, type BareShared, ignore } from "./node_bare_connection.ts";
import type { NodeConnections } from "./node_connections.ts";
import type { Handler } from "./types.ts";

export interface BareRequests {
  /** Cuts connections waiting for a request (as `closeIdleConnections` does for `node:http`'s). */
  closeIdle(): void;
  /** Cuts every connection still held here: streams that did not end when asked. */
  closeAll(): void;
}

/**
 * Takes the server's connections: each is read here until its first request that is not plain. A request that
 * arrives in one piece (nearly all do) costs no deadline bookkeeping; one in pieces gets its deadline at the first.
 */
export function answerOnBareSocket(
  server: Server,
  handler: Handler,
  maxHeadBytes: number,
  connections: NodeConnections,
  requestTimeoutMs: number,
  writeTimeoutMs: number,
): BareRequests {
  // `node:http` adds one "connection" listener; it is kept to hand connections to.
  const [toHttp] = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  const answering = new Set<Socket>();
  const shared: BareShared = { handler, maxHeadBytes, connections, writeTimeoutMs, answering, toHttp: (socket) => toHttp.call(server, socket) };
  server.on("connection", (socket: Socket) => {
    socket.on("error", ignore).once("close", () => answering.delete(socket));
    connections.accept(socket);
    // A new connection has the request deadline to start its request, as it has to finish it.
    new BareConnection(socket, shared, requestTimeoutMs);
  });
  return {
    closeIdle: () => connections.closeIdle(answering),
    closeAll: () => {
      answering.forEach((socket) => socket.destroy());
      connections.closeAll();
    },
  };
}
