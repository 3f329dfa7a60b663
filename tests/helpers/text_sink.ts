/** A stream's end for in-process tests: it keeps what the broker writes instead of sending it. */
import type { StreamSink } from "../../src/runtime/types.ts";

export class TextSink implements StreamSink {
  text = "";
  /** Each write's text, in order: what one write held (a commit's messages go out in one). */
  readonly writes: string[] = [];
  readonly #closing = new AbortController();

  get closed(): AbortSignal {
    return this.#closing.signal;
  }

  write(text: string): number {
    if (this.#closing.signal.aborted) return 0;
    this.text += text;
    this.writes.push(text);
    return 0;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closing.abort();
  }

  destroy(): void {
    this.#closing.abort();
  }
}
