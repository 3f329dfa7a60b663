/** Where `listen --pipe` writes: a FIFO, opened per message for readers that reopen, kept open for one that streams. */
import { spawnSync } from "node:child_process";
import { constants, statSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { InteropError } from "../errors.ts";
import { sleep } from "../sleep.ts";
import { fifoReaders, othersHoldOpen } from "./fifo_holders.ts";
import type { MessageSink } from "./listen_sinks.ts";

/** How long a reader may take to close the FIFO after end-of-file before it counts as a streaming reader. */
const READER_CLOSE_GRACE_MS = 250;

/**
 * Writes each message to a FIFO, opening it per message like the old `hermes-sse-client.py`, so a reader that
 * reads to end-of-file and reopens keeps working. With no reader it waits for one; nothing is dropped.
 *
 * A line counts as written once it is in the pipe, though its reader may die before reading it: nothing tells a
 * writer how much of a FIFO its reader drained (FIONREAD is an ioctl neither runtime exposes), so that loss (one
 * line) is documented rather than guarded (docs/cli.md).
 *
 * Before the next open it waits for the last reader to close: data written while a reader is between
 * end-of-file and close() would be thrown away with its file descriptor. A reader that keeps the FIFO open
 * past end-of-file (`tail -f`, a read loop on one descriptor) is a streaming reader: it gets the following
 * messages on one open descriptor, each once it waits on the empty pipe (`untilReaderWaits`). One that closes
 * after all (a slow `read line < FIFO`, taken for a streaming reader while it held the FIFO) gets its next line
 * with an end-of-file, and per-message opens resume.
 */
export function pipeSink(path: string, shutdown: AbortSignal): MessageSink {
  ensureFifo(path);
  let streaming: FileHandle | undefined;
  /** The streaming reader was last not seen waiting in a read (one in epoll): its lines go without waiting. */
  let readerUnseen = false;
  let wroteBefore = false;
  return async (message) => {
    const line = message.data + "\n";
    while (streaming !== undefined) {
      const { closed, seen } = await untilReaderWaits(path, shutdown, readerUnseen ? 0 : UNSEEN_READER_MS);
      readerUnseen = !seen;
      try {
        await writeAll(streaming, line, shutdown);
      } catch (error) {
        if (shutdown.aborted || (error as NodeJS.ErrnoException).code !== "EPIPE") throw error;
        // The reader left before the line went in: what it left in the pipe stays there while this descriptor is
        // open (with no writer and no reader, the kernel throws it away: red team 55 lost 75 lines of 300 so).
        continue;
      }
      // A reader that closed between lines, now seen waiting on the empty pipe, gets this line and its end-of-file
      // as the descriptor closes: it reads per message, and per-message opens resume.
      if (closed && seen) {
        await streaming.close().catch(() => {});
        streaming = undefined;
      }
      return;
    }
    if (wroteBefore && await readerStaysOpen(path)) {
      streaming = await openForReader(path, shutdown);
      await writeAll(streaming, line, shutdown);
      return;
    }
    await writePerMessage(path, line, shutdown);
    wroteBefore = true;
  };
}

/** Opens the FIFO once a reader has it, writes `line` and closes: the reader gets the line, then its end-of-file. */
async function writePerMessage(path: string, line: string, shutdown: AbortSignal): Promise<void> {
  const file = await openForReader(path, shutdown);
  try {
    await writeAll(file, line, shutdown);
  } finally {
    await file.close();
  }
}

/**
 * How long a reader that holds the FIFO may go unseen waiting in a read of it before lines are written to it all the
 * same: one that waits in epoll (an event loop reading the FIFO) shows no such wait, and would get nothing.
 */
const UNSEEN_READER_MS = 2000;

/**
 * Waits, for a streaming reader, until a reader of the FIFO waits on it empty (a thread blocked reading it, as
 * /proc shows), so that the pipe holds one line at a time: a reader that dies, or closes between lines, leaves at
 * most that line behind, as per-message opens do. `closed`: the reader closed the FIFO meanwhile (it reads per
 * message after all). Where /proc cannot tell it resolves at once; for a reader holding the FIFO and never seen
 * waiting, after `patienceMs` (`seen` false). Shutdown ends the wait (nothing written: the next listen writes it).
 */
async function untilReaderWaits(path: string, shutdown: AbortSignal, patienceMs: number): Promise<{ closed: boolean; seen: boolean }> {
  let closed = false;
  let since = performance.now();
  for (let delay = 1;; delay = Math.min(delay * 2, READER_POLL_MAX_MS)) {
    const readers = fifoReaders(path);
    if (readers === undefined || readers === "waiting") return { closed, seen: true };
    if (readers === "none") {
      closed = true;
      since = performance.now();
    } else if (performance.now() - since >= patienceMs) return { closed, seen: false };
    if (shutdown.aborted) throw new InteropError("internal", "Stopped while waiting for the FIFO's reader to read");
    await sleep(delay, shutdown);
  }
}

/** The longest pause between two looks for a reader of the FIFO: how late a reader that comes is served. */
const READER_POLL_MAX_MS = 200;

/**
 * Opens the FIFO for writing once a reader has it open. Not a blocking open(): that parks a threadpool thread in
 * the kernel until a reader comes, which nothing cancels, and the process cannot exit (SIGTERM, `systemctl stop`)
 * while it waits. A non-blocking open fails with ENXIO while there is no reader; it is tried again with a short
 * backoff, and a shutdown ends the wait (nothing was written: the state stays before this message).
 */
async function openForReader(path: string, shutdown: AbortSignal): Promise<FileHandle> {
  for (let delay = 5;; delay = Math.min(delay * 2, READER_POLL_MAX_MS)) {
    if (shutdown.aborted) throw new InteropError("internal", "Stopped while waiting for a reader on the FIFO");
    let file: FileHandle;
    try {
      file = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      // Removed while listen ran (a reader's clean-up, say): made again, as at the start, for the next reader.
      if (code === "ENOENT") ensureFifo(path);
      else if (code !== "ENXIO") throw error;
      await sleep(delay, shutdown);
      continue;
    }
    // Replaced while listen ran: a regular file would take every later line where no reader looks for it.
    if (!(await file.stat()).isFIFO()) {
      await file.close();
      throw notFifo(path, "is no longer a FIFO (replaced while listen ran)");
    }
    return file;
  }
}

/**
 * POSIX makes a write of at most PIPE_BUF (Linux: 4096) bytes to a pipe all or nothing, EAGAIN included. A larger
 * non-blocking write may be partial, and Deno 2.x's node:fs mishandles that: a 300 KiB line in one write reached
 * the reader corrupted (found by tests/e2e/listen_edges.test.ts), where 4 KiB writes arrive whole.
 */
const PIPE_BUF = 4096;

/** How long a shutdown waits for a reader to make room for the rest of a line already partly in the pipe. */
const PARTIAL_LINE_GRACE_MS = 1000;

/**
 * Writes all of `text` to a FIFO opened non-blocking, PIPE_BUF bytes at a time: a full pipe (a slow reader, a line
 * over the pipe's 64 KiB) answers EAGAIN, and the rest is written once the reader has read some. On shutdown a
 * reader that holds the FIFO open without reading must not keep listen running: a line none of which is in the pipe
 * is given up at once (not written, so not saved: the next listen writes it), one partly in it gets a moment for the
 * rest (half a line would corrupt the reader's next one), then is given up too.
 */
async function writeAll(file: FileHandle, text: string, shutdown: AbortSignal): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  let stoppedAt: number | undefined;
  while (offset < bytes.length) {
    try {
      offset += (await file.write(bytes, offset, Math.min(PIPE_BUF, bytes.length - offset))).bytesWritten;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      if (shutdown.aborted) {
        stoppedAt ??= performance.now();
        if (offset === 0 || performance.now() - stoppedAt > PARTIAL_LINE_GRACE_MS) {
          throw new InteropError("internal", `Stopped while the FIFO's reader was not reading: ${offset} of ${bytes.length} bytes written`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/**
 * Whether some reader still has the FIFO open after the grace period. Where /proc says who holds it, a reader
 * blocked in open() does not count: one that read to end-of-file, closed and opened it again is waiting for the next
 * message, not streaming. A non-blocking open, the only look elsewhere, counts that reader as one and wakes it for an
 * empty end-of-file: each look made it close and open again, so it was always found, taken for a streaming reader,
 * and never got its end-of-file again (red team, session 52: 1 message of 30 read while listen ran).
 */
async function readerStaysOpen(path: string): Promise<boolean> {
  const deadline = performance.now() + READER_CLOSE_GRACE_MS;
  while (performance.now() < deadline) {
    const held = othersHoldOpen(path);
    if (held === false) return false;
    if (held === undefined) {
      try {
        await (await open(path, constants.O_WRONLY | constants.O_NONBLOCK)).close();
      } catch {
        return false; // ENXIO: no reader has it open.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

function ensureFifo(path: string): void {
  let isFifo: boolean;
  try {
    isFifo = statSync(path).isFIFO();
  } catch {
    // Node has no mkfifo(); the coreutils command is on every system interop targets.
    const made = spawnSync("mkfifo", ["-m", "600", path], { encoding: "utf8" });
    if (made.status !== 0) {
      throw new InteropError("usage", `Cannot create FIFO ${path}: ${made.stderr?.trim() || made.error?.message}`);
    }
    return;
  }
  if (!isFifo) throw notFifo(path, "exists and is not a FIFO");
}

function notFifo(path: string, what: string): InteropError {
  return new InteropError("usage", `${path} ${what}; use --out to append to a regular file`);
}
