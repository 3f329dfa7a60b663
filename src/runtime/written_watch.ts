/** Tells an answer when its client has taken it, and cuts a client that takes none of it in time. */
import type { Socket } from "node:net";

/**
 * Runs `write(done)`, which writes an answer and calls `done` once its bytes have left the socket, then `written`
 * once: then, or when the connection closes. While bytes wait, the client has `timeoutMs` to take them all, as a
 * stream's has (--write-timeout); then it is cut, closing the connection. `socket` null: the client already left.
 */
export function watchWritten(socket: Socket | null, written: () => void, timeoutMs: number, write: (done: () => void) => void): void {
  if (socket === null || socket.destroyed) {
    write(() => {});
    return written();
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  let waiting = true;
  const done = () => {
    if (!waiting) return;
    waiting = false;
    clearTimeout(timer);
    socket.off("close", done);
    written();
  };
  socket.once("close", done);
  write(done);
  if (waiting && socket.writableLength > 0) timer = setTimeout(() => socket.destroy(), timeoutMs);
}
