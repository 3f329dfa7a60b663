/**
 * The sockets of the PostgreSQL store's connections, made by the store (postgres' `socket` option) so that it can
 * cut them. A cancel request is no way out of a call that never settles: a server stopped or a partition answers
 * nothing, and a client whose protocol state went wrong (porsager/postgres#1215) never reads the cancel's answer.
 */
import { Socket } from "node:net";

/** What postgres hands its `socket` option: the URL's hosts and ports, or a Unix socket's path. */
interface Target {
  host: string[];
  port: number[];
  path?: string | false;
}

export class StoreSockets {
  #open = new Set<Socket>();
  /** Which of the URL's hosts the next connection tries: each in turn, as postgres does without the option. */
  #turn = 0;

  /** postgres' `socket` option: a socket connecting to the Unix socket, or to the next of the URL's hosts. */
  readonly connect = (target: Target): Socket => {
    // Forgotten once closed, looked for here: postgres' TLS upgrade removes every listener from the socket it wraps.
    for (const open of this.#open) if (open.destroyed) this.#open.delete(open);
    const socket = new Socket();
    this.#open.add(socket);
    if (target.path) return socket.connect(target.path);
    const index = this.#turn++ % target.port.length;
    // postgres names the server to TLS (SNI) by the socket's `host`, which it sets on the sockets it makes itself.
    Object.assign(socket, { host: target.host[index], port: target.port[index] });
    return socket.connect(target.port[index], target.host[index]);
  };

  /** Destroys every connection: what they had in flight fails (CONNECTION_CLOSED), and the next call connects again. */
  destroyAll(): void {
    for (const socket of this.#open) socket.destroy();
  }
}
