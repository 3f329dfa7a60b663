/** A minimal SSE reader for tests, independent of the client code under test. */

export interface TestEvent {
  id?: string;
  event?: string;
  data: string;
}

export interface SseConnection {
  status: number;
  headers: Headers;
  /** Waits for `count` more message events (comments and retry lines skipped). */
  take(count: number, timeoutMs?: number): Promise<TestEvent[]>;
  /** Every raw byte received so far, as text. */
  raw(): string;
  /** Settles when the server ends or cuts the stream (or close() is called). */
  ended: Promise<void>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal });
  let raw = "";
  let buffer = "";
  const events: TestEvent[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const pump = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        buffer += text;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event: TestEvent = { data: "" };
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) event.id = line.slice(4);
            else if (line.startsWith("event: ")) event.event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length > 0) {
            event.data = data.join("\n");
            events.push(event);
          }
        }
        wake?.();
      }
    } catch {
      // Aborted by close().
    } finally {
      ended = true;
      wake?.();
    }
  })();
  return {
    status: response.status,
    headers: response.headers,
    async take(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (events.length < count) {
        if (ended) throw new Error(`stream ended after ${events.length} of ${count} events; raw:\n${raw.slice(-500)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out with ${events.length} of ${count} events`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, Math.min(left, 200));
        });
      }
      return events.splice(0, count);
    },
    raw: () => raw,
    ended: pump,
    close() {
      abort.abort();
      void pump;
    },
  };
}
