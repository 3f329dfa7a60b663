/** The JSON-RPC error answers of the A2A endpoint: its own errors, and the broker's refusals with their HTTP status. */
import { InteropError } from "../errors.ts";
import { errorResponse } from "../http/error_response.ts";
import { jsonResponse } from "../http/responses.ts";
import type { OutgoingResponse } from "../runtime/types.ts";
import { A2aError } from "./protocol.ts";

/** The JSON-RPC answer to a refusal (see rpcRefusal); anything else is a bug, thrown for the router to log and answer 500. */
export function refusalResponse(rpcId: string | number | null, error: unknown, taskId?: string): OutgoingResponse {
  const refusal = rpcRefusal(rpcId, error, taskId);
  if (refusal === undefined) throw error;
  return jsonResponse(refusal.status, refusal.body, refusal.headers);
}

/**
 * The JSON-RPC error answer for a refusal, with its HTTP status; undefined for anything else (a bug). What the broker
 * refused (rate limit, unknown agent, full inbox, storage) keeps its HTTP status, so that clients retry what may pass
 * later, and names interop's code in a JSON-RPC error, with its `retryAfter` (seconds), and the `taskId` of a message
 * stored before the refusal (GetTask finds it; the same SendMessage again answers it, stored once).
 */
export function rpcRefusal(
  rpcId: string | number | null,
  error: unknown,
  taskId?: string,
): { status: number; body: object; headers: Record<string, string> } | undefined {
  if (error instanceof A2aError) {
    return { status: 200, body: { jsonrpc: "2.0", id: rpcId, error: { code: error.code, message: error.message } }, headers: {} };
  }
  if (!(error instanceof InteropError)) return undefined;
  const { status, headers } = errorResponse(error);
  const data = {
    code: error.code,
    ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter }),
    ...(taskId === undefined ? {} : { taskId }),
  };
  return {
    status,
    body: { jsonrpc: "2.0", id: rpcId, error: { code: -32000, message: error.message, data } },
    headers: headers["retry-after"] === undefined ? {} : { "retry-after": headers["retry-after"] },
  };
}
