/** `/dead-letters`: an agent's receiver parks a message it refused (POST), and anyone allowed lists them (GET). */
import { authorize, type Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import type { ListedDeadLetter } from "../broker/dead_letters.ts";
import { InteropError } from "../errors.ts";
import { parseAgentName, parsePayload } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { parseLimit } from "./query_params.ts";
import { heldAnswer, jsonResponse, jsonTextResponse } from "./responses.ts";

/** A dead letter's request is an id and a reason: a fixed bound, whatever `--max-body-bytes` allows a message. */
const DEAD_LETTER_BODY_BYTES = 64 * 1024;

export async function parkDeadLetter(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "park dead letters for");
  const text = await request.text(DEAD_LETTER_BODY_BYTES).catch((error) => {
    // The general answer names --max-body-bytes, which does not change this bound.
    if (!(error instanceof InteropError && error.code === "payload_too_large")) throw error;
    throw new InteropError("payload_too_large", `Body too large: a dead letter ({"id", "reason"}) is at most ${DEAD_LETTER_BODY_BYTES} bytes`);
  });
  const { id, reason } = parsePayload(text, request.header("content-type"));
  if (!Number.isSafeInteger(id) || typeof reason !== "string" || reason === "") {
    throw new InteropError("invalid_body", 'Invalid dead letter: send {"id": MESSAGE_ID, "reason": "why the receiver refused it"}');
  }
  await broker.deadLetters.park(agent, id as number, reason);
  return jsonResponse(200, { parked: true, id });
}

export async function listDeadLetters(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "read the dead letters of");
  const answer = broker.answer((letter: ListedDeadLetter) => JSON.stringify(letter), agent);
  return await heldAnswer(answer, async () => {
    // The newest that fit in one answer, as /history: letters of big messages would otherwise make it a 500.
    const letters = await broker.deadLetters.list(agent, parseLimit(request.url.searchParams.get("limit")), answer);
    return jsonTextResponse(200, await answer.body(letters), answer.headers());
  });
}
