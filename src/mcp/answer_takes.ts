/**
 * The takes of what MCP calls showed, each run once its call's answer was written to the client, or is known never
 * to be: a message is taken only after the agent can read it, so `interop mcp` killed at any instant loses none.
 */
import type { RequestId } from "./taken_messages.ts";

export class AnswerTakes {
  /** The calls whose answer shows messages not yet taken, and what tells each whether its answer was written. */
  #pending = new Map<RequestId, (written: boolean) => void>();
  /** The takes of answers written, still at the broker. */
  #taking = new Set<Promise<unknown>>();

  /**
   * Call `requestId` answers with messages shown under a lease: `take` runs with true once the answer is in stdout's
   * pipe (the client reads it even if this process is killed then), with false once it never will be (the call was
   * cancelled first, which the SDK answers with nothing; the write failed). It starts at once, so what it records
   * before its first await is recorded before any message the client sends after reading the answer (its cancel).
   * Resolves with what `take` returns.
   */
  after<T>(requestId: RequestId, signal: AbortSignal, take: (written: boolean) => Promise<T>): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const cancelled = () => this.settle(requestId, false);
    this.#pending.set(requestId, (written) => {
      signal.removeEventListener("abort", cancelled);
      const taking = take(written);
      this.#taking.add(taking);
      const done = () => this.#taking.delete(taking);
      taking.then(done, done);
      taking.then(resolve, reject);
    });
    if (signal.aborted) cancelled();
    else signal.addEventListener("abort", cancelled, { once: true });
    return promise;
  }

  /**
   * Resolves once the takes of the answers written so far are done: a client's next read comes right after an
   * answer, and a peek under a lease of its own while the last one still holds the inbox would be refused (409).
   */
  async taken(): Promise<void> {
    await Promise.allSettled(this.#taking);
  }

  /** The answer to call `requestId` was written (`written`), or its write failed. */
  settle(requestId: RequestId, written: boolean): void {
    const settled = this.#pending.get(requestId);
    this.#pending.delete(requestId);
    settled?.(written);
  }
}
