/** A stream's end for in-process tests: it keeps what the broker writes instead of sending it. */
import type { Broker } from "../../src/broker/broker.ts";
import { sseFormat } from "../../src/http/sse_format.ts";
import type { AgentName } from "../../src/message.ts";
import type { StreamSink } from "../../src/runtime/types.ts";

export class TextSink implements StreamSink {
  text = "";
  /** Each write's text, in order: what one write held (a commit's messages go out in one). */
  readonly writes: string[] = [];
  readonly #closing = new AbortController();

  /** The ids of the SSE events written so far, in order. */
  ids(): number[] {
    return [...this.text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
  }

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

/** A stream of `agent`'s inbox from its cursor (`interop listen`, or a client resuming without an id), into a TextSink. */
export async function streamFromCursor(broker: Broker, agent: AgentName): Promise<TextSink> {
  const sink = new TextSink();
  (await broker.prepareStream(agent, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  return sink;
}
