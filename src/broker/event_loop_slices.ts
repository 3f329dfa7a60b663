/**
 * Long work cut into slices of bounded size with a turn of the event loop between two, so that what arrives
 * meanwhile (`/status`, other agents' requests) is answered within a slice rather than after the whole of it.
 */
import { setTimeout } from "node:timers";

export class EventLoopSlices {
  readonly #size: number;
  #done = 0;

  /** `size`: how much work (in whatever unit the caller counts) a slice holds. */
  constructor(size: number) {
    this.#size = size;
  }

  /** Counts `amount` of work done; once a slice's worth is done, resolves after a turn of the event loop, its I/O included. */
  async after(amount: number): Promise<void> {
    this.#done += amount;
    if (this.#done < this.#size) return;
    this.#done = 0;
    // A timer, not setImmediate: Deno 2.9 polls no I/O while immediates keep queueing more (twelve chains of 20 ms
    // slices kept a new connection unanswered for 20 s and more; with timers, ~0.5 s), so a burst of big answers had
    // its listener watch take the listener for dead and reset the connections queued on it. Node polls I/O either way.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
