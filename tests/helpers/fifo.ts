/** Reads a FIFO the way an agent reading the old bridge's pipe does: open, read to end-of-file, reopen. */
import { spawnSync } from "node:child_process";
import { constants } from "node:fs";
import { open } from "node:fs/promises";

export interface FifoReader {
  lines: string[];
  /** Stops reading (unblocks a pending open) and resolves when the reader loop has ended. */
  stop(): Promise<void>;
}

export function makeFifo(path: string): void {
  const made = spawnSync("mkfifo", [path]);
  if (made.status !== 0) throw new Error(`mkfifo ${path} failed: ${made.stderr}`);
}

export function readFifo(path: string): FifoReader {
  const lines: string[] = [];
  let stopping = false;
  let partial = "";
  const loop = (async () => {
    while (!stopping) {
      const file = await open(path, "r");
      try {
        for await (const chunk of file.createReadStream({ encoding: "utf8", autoClose: false })) {
          partial += chunk;
          const parts = partial.split("\n");
          partial = parts.pop()!;
          lines.push(...parts);
        }
      } finally {
        await file.close().catch(() => {});
      }
    }
  })();
  return {
    lines,
    async stop() {
      stopping = true;
      let ended = false;
      void loop.then(() => (ended = true));
      while (!ended) {
        // Opening the write end releases a reader blocked in open(); closing it ends that read. Non-blocking, so
        // with no reader waiting it fails at once (ENXIO) and is tried again until the loop has ended.
        try {
          const writer = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
          await writer.close();
        } catch {
          // No reader blocked in open() yet.
        }
        await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 20))]);
      }
    },
  };
}
