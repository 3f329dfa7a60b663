/** A stopping broker's answer to what still arrives on open connections: a refusal that clients retry elsewhere. */
import { isA2aCall, stoppedCallAnswer } from "../a2a/stopped_call.ts";
import { InteropError } from "../errors.ts";
import type { Handler } from "../runtime/types.ts";
import { errorResponse } from "./error_response.ts";

/**
 * Wraps `handler` so that once `stop()` was called each new request is answered 503 `storage_unavailable` with
 * `Retry-After: 1`. Without it, requests read on keep-alive connections in the second the server gives them to
 * end reached a store being closed and got `storage_failed` ("database is not open", "statement has been
 * finalized"): a client with several `--url`s did not go on to the next broker, an MCP tool showed a storage
 * fault. Requests already in progress finish as they were. An A2A call is refused as a JSON-RPC error with its id
 * (its body read up to `maxBodyBytes`), which is what an A2A client reads.
 */
export function stoppingGate(handler: Handler, maxBodyBytes: number): { handler: Handler; stop(): void } {
  let stopping = false;
  return {
    handler: (request) => {
      if (!stopping) return handler(request);
      return isA2aCall(request) ? stoppedCallAnswer(request, stoppingError(), maxBodyBytes) : Promise.resolve(errorResponse(stoppingError()));
    },
    stop: () => {
      stopping = true;
    },
  };
}

function stoppingError(): InteropError {
  return new InteropError(
    "storage_unavailable",
    "The broker is stopping: retry in a moment, here once it is back or at another broker on the same database",
    { retryAfter: 1 },
  );
}
