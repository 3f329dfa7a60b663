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

/**
 * Every `periodMs` in which `server` accepted nothing, one connection to itself; if that is not accepted within
 * `periodMs` either, the server listens again on its address (connections it holds are kept) and `relistened` is
 * told. Call once the server listens, after every other "connection" listener is in place.
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
  server.on("connection", () => void accepted++);
  const check = () => {
    if (down) return again();
    if (probe !== undefined) return;
    if (accepted !== seen || !server.listening) return void (seen = accepted);
    const before = accepted;
    probe = connect({ port, host: address }).on("error", () => {});
    const settle = (due: number) => {
      waiting = setTimeout(() => {
        // A timer late by much was held up by a busy event loop (building a big answer takes a second or more):
        // the accept may simply not have been handed over yet, so the probe gets another period (without this,
        // a burst of big answers on Deno had the listener closed under queued connections, which were reset).
        if (Date.now() - due > periodMs / 4) return settle(Date.now() + periodMs);
        settling = setImmediate(() => {
          endProbe();
          seen = accepted;
          if (accepted === before && server.listening) again();
        });
      }, due - Date.now());
      waiting.unref();
    };
    settle(Date.now() + periodMs);
  };
  const timer = setInterval(check, periodMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      clearTimeout(waiting);
      clearImmediate(settling);
      endProbe();
    },
  };
}

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
