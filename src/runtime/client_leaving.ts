/**
 * When a `node:http` client leaves: it hangs up ("close") or half-closes ("end"). One reads as the other until a write
 * fails (a FIN either way), so both count as leaving, as on the bare socket: a wait takes nothing for it, a stream
 * ends, a body cut short is cut. What is answered is still written (`httpAllowHalfOpen`).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * What runs when each socket's client leaves. One listener per socket, however many requests are pipelined on it: one
 * per request went past Node's listener warning (11 on a connection) at a client's asking, once per connection.
 */
const onLeaving = new WeakMap<Socket, Set<() => void>>();

/** Whether `socket`'s client has left already. */
function gone(socket: Socket): boolean {
  return socket.destroyed || socket.readableEnded;
}

/** Runs `left` once `socket`'s client leaves (not if it has already: see `gone`); returns what stops that. */
function onceLeft(socket: Socket, left: () => void): () => void {
  let callbacks = onLeaving.get(socket);
  if (callbacks === undefined) {
    const leaving = callbacks = new Set();
    onLeaving.set(socket, leaving);
    const leave = () => {
      socket.off("end", leave).off("close", leave);
      onLeaving.delete(socket);
      for (const callback of leaving) callback();
    };
    socket.on("end", leave).on("close", leave);
  }
  callbacks.add(left);
  return () => callbacks.delete(left);
}

/**
 * Calls `left` once the client leaves before `res` is finished, or at once if it has. The request's socket, not the
 * response's: a response queued behind a pipelined one has none until its turn (read as gone, a pipelined wait
 * answered 204 at once and a stream ended empty).
 */
export function whenClientLeaves(req: IncomingMessage, res: ServerResponse, left: () => void): void {
  const socket = req.socket;
  if (res.closed || gone(socket)) return left();
  let done = false;
  const settle = () => {
    if (done) return;
    done = true;
    stop();
    res.off("close", settle);
    if (!res.writableFinished) left();
  };
  const stop = onceLeft(socket, settle);
  res.on("close", settle);
}

/**
 * Cuts `req`'s body once its client leaves before sending all of it. With `httpAllowHalfOpen`, Deno's node:http never
 * ends such a body (Node's parser fails it): its read waited for good, holding a place under the connection cap.
 * Returns what stops the watch, once the body is read.
 */
export function cutBodyWhenClientLeaves(req: IncomingMessage): () => void {
  const cut = () => req.complete || req.destroy(new Error("aborted"));
  if (gone(req.socket)) {
    // Once the parser has read what arrived before the FIN (it calls the handler at the head): a body sent whole
    // is served.
    setImmediate(cut);
    return () => {};
  }
  return onceLeft(req.socket, cut);
}
