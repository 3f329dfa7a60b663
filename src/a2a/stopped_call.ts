/** A stopping broker's refusal of an A2A call that still arrives: a JSON-RPC error, as an A2A client reads one. */
import type { InteropError } from "../errors.ts";
import { refuseUnkeptJson } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { A2A_PREFIX } from "./agent_card.ts";
import { refusalResponse } from "./rpc_refusal.ts";

/** Whether `request` is a JSON-RPC call to an agent's A2A endpoint (`POST /a2a/<agent>`). */
export function isA2aCall(request: IncomingRequest): boolean {
  return request.method === "POST" && request.url.pathname.startsWith(`${A2A_PREFIX}/`);
}

/**
 * `refusal` (the broker is stopping: 503 with Retry-After) as the JSON-RPC error answer to the call `request` makes,
 * with the call's id. A plain `{"error": …}` reached @a2a-js/sdk's client as an error naming only the HTTP status
 * (a streamed call's as a JsonRpcTransportError saying only "An unexpected error occurred."), its `retryAfter` lost;
 * a held SendMessage that the stop ends already answers so. The id is the call's when its body (read up to
 * `maxBodyBytes`) is a JSON object with one, else null, as JSON-RPC answers a request whose id cannot be read.
 */
export async function stoppedCallAnswer(request: IncomingRequest, refusal: InteropError, maxBodyBytes: number): Promise<OutgoingResponse> {
  return refusalResponse(await callId(request, maxBodyBytes), refusal);
}

async function callId(request: IncomingRequest, maxBodyBytes: number): Promise<string | number | null> {
  try {
    const text = await request.text(maxBodyBytes);
    refuseUnkeptJson(text);
    const { id } = JSON.parse(text);
    return typeof id === "string" || (typeof id === "number" && Number.isFinite(id)) ? id : null;
  } catch {
    // Too large, not JSON, not an object: an id that cannot be read is null.
    return null;
  }
}
