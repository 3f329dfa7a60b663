/**
 * Brings back a listener that stopped accepting. Deno 2.9's `node:net` listener accepts nothing more, for good and
 * without an "error", after one accept failed for want of file descriptors (EMFILE): a flood of connections that
 * outpaces the release of closed sockets' descriptors (later on Deno than on Node) takes the broker down. Listening
 * anew on the same address brings it back; the watch finds when to, by connecting to the broker itself.
 */
import { type AddressInfo, connect, Server, type Socket } from "node:net";

/** How long the listener may go without accepting before it is probed, and how long the probe may wait. */
export const LISTENER_CHECK_MS = 1000;

export interface ListenerWatch {
  stop(): void;
}

type ConnectionListener = (socket: Socket) => void;

/**
 * Every `periodMs` in which `server` accepted nothing, one connection to itself; if that is not accepted within
 * `periodMs` either, the server listens again on its address (connections it holds are kept) and `relistened` is
 * told. Call once the server listens, after every other "connection" listener is in place: those listeners are
 * never handed the probe, so it takes no place under the connection cap (a probe counted there closed the oldest
 * idle connection of a full cap).
 */
export function watchListener(server: Server, relistened: (error?: Error) => void, periodMs = LISTENER_CHECK_MS): ListenerWatch {
  const { address, port } = server.address() as AddressInfo;
  let accepted = 0;
  let seen = 0;
  let probe: Socket | undefined;
  let waiting: ReturnType<typeof setTimeout> | undefined;
  let settling: ReturnType<typeof setImmediate> | undefined;
  /** Listening anew failed (the old socket's port not yet let go): tried again at the next check. */
  let down = false;
  const again = () => {
    down = true;
    listenAgain(server, address, port, (error) => {
      down = error !== undefined;
      relistened(error);
    });
  };
  const endProbe = () => {
    probe?.destroy();
    probe = undefined;
  };
  const sorter = sortOutProbe(server, () => void accepted++);
  const check = () => {
    if (down) return again();
    if (probe !== undefined) return;
    if (accepted !== seen || !server.listening) return void (seen = accepted);
    const before = accepted;
    probe = connect({ port, host: address }).on("error", () => {});
    sorter.probing(probe);
    const settle = (due: number) => {
      waiting = setTimeout(() => {
        // A timer late by much was held up by a busy event loop (building a big answer takes a second or more):
        // the accept may simply not have been handed over yet, so the probe gets another period (without this,
        // a burst of big answers on Deno had the listener closed under queued connections, which were reset).
        if (performance.now() - due > periodMs / 4) return settle(performance.now() + periodMs);
        settling = setImmediate(() => {
          endProbe();
          seen = accepted;
          if (accepted === before && server.listening) again();
        });
      }, due - performance.now());
      waiting.unref();
    };
    settle(performance.now() + periodMs);
  };
  const timer = setInterval(check, periodMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      clearTimeout(waiting);
      clearImmediate(settling);
      endProbe();
      sorter.handOver();
    },
  };
}

interface ProbeSorter {
  /** `probe` is on its way: connections accepted until its own address is known are held back. */
  probing(probe: Socket): void;
  /** Hands every connection held back to the server's listeners. */
  handOver(): void;
}

/**
 * Takes the server's accepted connections before its "connection" listeners and keeps the probe from them (it is
 * closed at once). The probe is known by its local address, which its "connect" tells only after the server has
 * accepted it (on Node and Deno alike): connections accepted in between wait for that, a moment.
 */
function sortOutProbe(server: Server, accepted: () => void): ProbeSorter {
  const listeners = server.listeners("connection") as ConnectionListener[];
  server.removeAllListeners("connection");
  const handOn = (socket: Socket) => listeners.forEach((listener) => listener.call(server, socket));
  let probe: Socket | undefined;
  let held: Socket[] = [];
  const isProbe = (socket: Socket) =>
    probe !== undefined && socket.remotePort === probe.localPort && sameHost(socket.remoteAddress, probe.localAddress);
  const sort = (socket: Socket) => {
    if (!isProbe(socket)) return handOn(socket);
    probe = undefined;
    socket.destroy();
  };
  const handOver = () => {
    const sockets = held;
    held = [];
    for (const socket of sockets) {
      socket.off("error", ignore);
      // One gone meanwhile is nobody's: handed on, it would be counted under the cap for good (its "close" is past).
      if (!socket.destroyed) sort(socket);
    }
  };
  server.on("connection", (socket: Socket) => {
    accepted();
    if (probe === undefined || probe.localPort !== undefined) return sort(socket);
    // Not yet read by anyone, so no byte is lost; an error meanwhile destroys it, and it is dropped.
    held.push(socket.on("error", ignore));
  });
  return {
    probing(next) {
      probe = next;
      next.once("connect", handOver).once("close", () => {
        if (probe === next) probe = undefined;
        handOver();
      });
    },
    handOver,
  };
}

/** The same address as the other side sees it: an IPv4 peer of a dual-stack socket is written `::ffff:a.b.c.d`. */
function sameHost(a: string | undefined, b: string | undefined): boolean {
  const plain = (host: string | undefined) => host?.replace(/^::ffff:/, "");
  return plain(a) === plain(b);
}

function ignore(): void {}

/** Closes the dead listening socket (not the connections: `net.Server`'s close, not `node:http`'s) and listens anew. */
function listenAgain(server: Server, address: string, port: number, relistened: (error?: Error) => void): void {
  if (server.listening) Server.prototype.close.call(server);
  const failed = (error: Error) => relistened(error);
  server.once("error", failed);
  server.listen(port, address, () => {
    server.off("error", failed);
    relistened();
  });
}
