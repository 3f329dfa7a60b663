/** Tells an answer when its client has taken it, and cuts a client that takes none of it in time. */
import type { Socket } from "node:net";

/**
 * Runs `write(done)`, which writes an answer and calls `done` once its bytes have left the socket, then `written`
 * once: then, or when the connection closes. While bytes wait, a client that takes none of them for `timeoutMs`
 * (--write-timeout) is cut, closing the connection. `socket` null: the client already left.
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
  if (!waiting) return;
  // A client that reads all along has as long as it takes: cut at the deadline, a slow link (16 MiB at under
  // 280 KB/s in 60 s) lost the messages its /poll had taken.
  let taken = flushed(socket);
  const look = () => {
    const now = flushed(socket);
    if (now === taken) return void socket.destroy();
    taken = now;
    timer = setTimeout(look, timeoutMs);
  };
  timer = setTimeout(look, timeoutMs);
}

/** Bytes the socket handed to the network so far (`bytesWritten` counts those it still buffers too). */
function flushed(socket: Socket): number {
  return socket.bytesWritten - socket.writableLength;
}
