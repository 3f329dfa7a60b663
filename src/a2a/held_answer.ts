/** A JSON answer that waits for something (a reply), held open with whitespace so a client's read timeout does not end it. */
import { streamResponse } from "../http/responses.ts";
import type { OutgoingResponse } from "../runtime/types.ts";

/**
 * How often a held answer writes a space: well inside the read timeouts clients put on a silent connection (Hermes's
 * A2A client: 30 s, httpx's `Timeout(30.0)`; many proxies: 60 s).
 */
export const HELD_ANSWER_KEEPALIVE_MS = 10_000;

/**
 * The answer once `value` resolves: as it is (`{ ready }`, for the caller to send as a plain body) when that takes
 * less than `keepaliveMs`; else a stream that sends its head at once, a space every `keepaliveMs` (JSON allows
 * whitespace before a value), then the value's JSON, or `lateError`'s for a rejection. Without the spaces, a client
 * that gives up on a silent read (Hermes's A2A client after 30 s) leaves long before its own deadline (120 s), and a
 * reply that comes in between waits in its inbox instead. `left` is aborted when the stream's client hangs up, so
 * whatever `value` waits for stops waiting (and takes nothing). A rejection before the stream starts is thrown.
 */
export async function heldJsonAnswer(
  value: Promise<unknown>,
  keepaliveMs: number,
  left: AbortController,
  lateError: (error: unknown) => unknown,
): Promise<{ ready: unknown } | { response: OutgoingResponse }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const patience = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), keepaliveMs)));
  const early = await Promise.race([value.then((ready) => ({ ready })), patience]).finally(() => clearTimeout(timer));
  if (early !== undefined) return early;
  return {
    response: streamResponse("application/json; charset=utf-8", (sink) => {
      sink.write(" ");
      const keepalive = setInterval(() => sink.write(" "), keepaliveMs);
      sink.closed.addEventListener("abort", () => {
        clearInterval(keepalive);
        left.abort();
      }, { once: true });
      void lastText(value, lateError).then((text) => {
        clearInterval(keepalive);
        sink.write(text);
        sink.close();
      });
    }, { "cache-control": "no-store" }),
  };
}

/** The JSON of what `value` resolves with, else (a rejection, or a value JSON cannot encode) of `lateError`'s answer. */
async function lastText(value: Promise<unknown>, lateError: (error: unknown) => unknown): Promise<string> {
  try {
    return JSON.stringify(await value);
  } catch (error) {
    return JSON.stringify(lateError(error));
  }
}
