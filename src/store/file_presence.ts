/**
 * Whether an open file is still the one at its path: a database whose data dir was removed (or whose file was
 * replaced) while the broker ran would take every later commit into a file no one can open again, each message it
 * acknowledged lost at the stop, while a second broker could open the path (red team 53: 200 acknowledged messages
 * lost). Looked at by device and inode, once a second at most.
 */
import { statSync } from "node:fs";

/** How long a look at the path is trusted, in ms. */
const LOOK_EVERY_MS = 1000;

export class FilePresence {
  readonly path: string;
  #dev: number;
  #ino: number;
  #seenAt: number;

  /** `path` as it is now: the file just opened there. */
  constructor(path: string) {
    this.path = path;
    ({ dev: this.#dev, ino: this.#ino } = statSync(path));
    this.#seenAt = performance.now();
  }

  /** What became of the file (`"removed"`, `"replaced"`), or undefined while it is still at its path. */
  lost(): "removed" | "replaced" | undefined {
    const now = performance.now();
    if (now - this.#seenAt < LOOK_EVERY_MS) return undefined;
    const found = statSync(this.path, { throwIfNoEntry: false });
    if (found === undefined) return "removed";
    if (found.dev !== this.#dev || found.ino !== this.#ino) return "replaced";
    this.#seenAt = now;
    return undefined;
  }
}
