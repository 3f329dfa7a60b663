/**
 * `/dead-letters`: an agent's receiver parks a message it refused (POST), anyone allowed lists them (GET),
 * acknowledges them once seen to (`/dead-letters/acknowledge`) or sends them again (`/dead-letters/redeliver`).
 */
import { authorize, type Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import { type ListedDeadLetter, MAX_REDELIVERED } from "../broker/dead_letters.ts";
import { InteropError } from "../errors.ts";
import { parseAgentName, parsePayload } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { parseFlag, parseLimit } from "./query_params.ts";
import { heldAnswer, jsonResponse, jsonTextResponse } from "./responses.ts";

/**
 * A dead letter's request is an id and a reason, an acknowledgement's a list of ids: a fixed bound, whatever
 * `--max-body-bytes` allows a message.
 */
const DEAD_LETTER_BODY_BYTES = 64 * 1024;

async function readBody(request: IncomingRequest, shape: string): Promise<Record<string, unknown>> {
  const text = await request.text(DEAD_LETTER_BODY_BYTES).catch((error) => {
    // The general answer names --max-body-bytes, which does not change this bound.
    if (!(error instanceof InteropError && error.code === "payload_too_large")) throw error;
    throw new InteropError("payload_too_large", `Body too large: ${shape} is at most ${DEAD_LETTER_BODY_BYTES} bytes`);
  });
  return parsePayload(text, request.header("content-type"));
}

export async function parkDeadLetter(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "park dead letters for");
  const { id, reason } = await readBody(request, 'a dead letter ({"id", "reason"})');
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
    const query = request.url.searchParams;
    const withAcknowledged = parseFlag(query.get("acknowledged"), "acknowledged", "acknowledged=1 (list those acknowledged too)");
    const letters = await broker.deadLetters.list(agent, parseLimit(query.get("limit")), withAcknowledged, answer);
    return jsonTextResponse(200, await answer.body(letters), answer.headers());
  });
}

/** `{"ids": [MESSAGE_ID, …]}` or `{"all": true}`: the letters an operator has seen to leave the count status checks. */
export async function acknowledgeDeadLetters(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "acknowledge the dead letters of");
  const ids = letterIds("acknowledgement", await readBody(request, 'an acknowledgement ({"ids"} or {"all"})'), true);
  const { acknowledged, left } = await broker.deadLetters.acknowledge(agent, ids);
  return jsonResponse(200, { acknowledged, dead_letters: left });
}

/** `{"ids": [MESSAGE_ID, …]}`: the letters' messages sent to the agent again, as new messages, and acknowledged. */
export async function redeliverDeadLetters(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "redeliver the dead letters of");
  const ids = letterIds("redelivery", await readBody(request, 'a redelivery ({"ids"})'), false)!;
  if (ids.length > MAX_REDELIVERED) {
    throw new InteropError("invalid_body", `Invalid redelivery: at most ${MAX_REDELIVERED} ids a request (it has ${ids.length})`);
  }
  const { redelivered, unknown, removed, refused, left } = await broker.deadLetters.redeliver(agent, ids);
  return jsonResponse(200, { redelivered, unknown, removed, refused, dead_letters: left });
}

/** The ids of `{"ids": [...]}`, or undefined for `{"all": true}` where `all` is allowed; else 400 naming both. */
function letterIds(what: string, { ids, all }: Record<string, unknown>, allowAll: boolean): number[] | undefined {
  const listed = Array.isArray(ids) && ids.length > 0 && ids.every((id) => Number.isSafeInteger(id) && id > 0);
  if (allowAll && all === true && ids === undefined) return undefined;
  if (all === undefined && listed) return ids as number[];
  throw new InteropError(
    "invalid_body",
    `Invalid ${what}: send {"ids": [MESSAGE_ID, ...]} (the letters' ids, as GET /dead-letters lists them)${allowAll ? ' or {"all": true}' : ""}`,
  );
}
