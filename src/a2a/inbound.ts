/**
 * interop as every agent's A2A endpoint: `POST /a2a/<agent>` takes JSON-RPC (v1.0 and v0.3 method names), and a
 * message sent there is an interop message from the caller (the agent of its token) to `<agent>`, committed
 * before the answer; its task follows the message (see tasks.ts). The methods are in rpc_methods.ts.
 */
import type { Authenticator, Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import type { AgentShares } from "../http/agent_shares.ts";
import { InteropError } from "../errors.ts";
import { errorResponse } from "../http/error_response.ts";
import { isLook } from "../http/methods.ts";
import { jsonResponse } from "../http/responses.ts";
import { type AgentName, parseAgentName, refuseUnkeptJson } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { A2A_PREFIX, agentCard, CARD_PATHS, cardBaseUrl, strictAgentCard } from "./agent_card.ts";
import { A2A_ERROR, A2aError, isObject, resolveMethod } from "./protocol.ts";
import { type Call, METHODS } from "./rpc_methods.ts";
import { refusalResponse } from "./rpc_refusal.ts";
import { recentTasks } from "./tasks.ts";
import type { TaskChanges } from "./task_watch.ts";

/** The sender of an A2A message when the broker has no tokens (loopback only): any local caller, as for every route. */
export const DEFAULT_A2A_SENDER = "a2a" as AgentName;
/**
 * How long a blocking SendMessage (or a task stream) waits for the reply by default (`serve --a2a-wait`), taking it from the caller's inbox. Past
 * Hermes's own wait (its A2A client gives a call 120 s, its server a turn 300 s): a call is answered when the
 * reply comes, and a caller that leaves frees the wait at once.
 */
export const DEFAULT_A2A_REPLY_WAIT_MS = 300_000;
export interface A2aInboundOptions {
  auth: Authenticator;
  maxBodyBytes: number;
  changes: TaskChanges;
  /** The places of each task's blocking calls and streams (`taskFollowerPlaces`). */
  taskFollowers: AgentShares;
  /** How long a blocking SendMessage (or a task stream) waits for the reply. */
  replyWaitMs: number;
  /** How often a blocking SendMessage still waiting writes a space (HELD_ANSWER_KEEPALIVE_MS; shorter in tests). */
  keepaliveMs: number;
  /** Called with errors that are bugs, for the log: those a held answer meets after its head went, past the router's catch. */
  onInternalError(error: unknown): void;
}

/** Whether a path is under `/a2a`. */
export function isA2aPath(pathname: string): boolean {
  return pathname === A2A_PREFIX || pathname.startsWith(`${A2A_PREFIX}/`);
}

/**
 * The agent card, for `GET /a2a/<agent>/.well-known/agent-card.json`; undefined for any other request. At the
 * origin, where A2A discovery looks for a host's one agent: the strict card of `originAgent` (`serve
 * --a2a-origin-agent`), else a 404 naming where each agent's card is (the token check answered those 401, which
 * told a discovering client a credential was missing).
 */
export function cardResponse(request: IncomingRequest, originAgent?: AgentName, publicUrl?: string): OutgoingResponse | undefined {
  const { pathname } = request.url;
  // A HEAD (a link checker's, a discovery probe's) as the GET, without the body.
  if (!isLook(request.method)) return undefined;
  if (CARD_PATHS.has(pathname)) {
    if (originAgent !== undefined) return jsonResponse(200, strictAgentCard(originAgent, cardBaseUrl(request, publicUrl)));
    return errorResponse(
      new InteropError(
        "not_found",
        `No agent card at ${pathname}: interop serves one card per agent, GET ${A2A_PREFIX}/AGENT${pathname} (its endpoint: POST ${A2A_PREFIX}/AGENT); ` +
          "serve --a2a-origin-agent NAME serves NAME's card here",
      ),
    );
  }
  if (!isA2aPath(pathname)) return undefined;
  const { agent, rest } = splitPath(pathname);
  if (!CARD_PATHS.has(rest)) return undefined;
  // Any valid name has a card, known or not: a card tells nothing of which agents exist.
  return jsonResponse(200, agentCard(parseAgentName(agent, "agent"), cardBaseUrl(request, publicUrl)));
}

/** `POST /a2a/<agent>`: one JSON-RPC request from `caller`. */
export async function handleA2a(
  broker: Broker,
  request: IncomingRequest,
  caller: Caller,
  options: A2aInboundOptions,
): Promise<OutgoingResponse> {
  if (request.url.pathname === A2A_PREFIX) return await taskList(broker, request, caller);
  const { agent: name, rest } = splitPath(request.url.pathname);
  if (rest !== "") {
    throw new InteropError(
      "not_found",
      `Not found: ${request.url.pathname}; an agent's A2A endpoint is POST ${A2A_PREFIX}/AGENT, its card GET ${A2A_PREFIX}/AGENT/.well-known/agent-card.json`,
    );
  }
  if (request.method !== "POST") {
    return errorResponse(new InteropError("method_not_allowed", `Method ${request.method} not allowed on ${request.url.pathname}: use POST`), {
      allow: "POST",
    });
  }
  const agent = parseAgentName(name, "agent");
  const text = await request.text(options.maxBodyBytes);
  let rpcId: string | number | null = null;
  try {
    const call = parseCall(text);
    rpcId = call.id;
    const { method, version } = resolveMethod(call.method, request.header("a2a-version"));
    const sender = caller === "anyone" ? DEFAULT_A2A_SENDER : caller.agent;
    const params = callParams(call.params);
    const context: Call = { broker, request, options, caller, agent, sender, params, rpcId: call.id, version };
    const answer = await METHODS[method](context);
    if ("result" in answer) return jsonResponse(200, { jsonrpc: "2.0", id: rpcId, result: answer.result });
    return answer.response;
  } catch (error) {
    return refusalResponse(rpcId, error);
  }
}

/** `GET /a2a`: the recent A2A tasks the caller may see, for the dashboard. */
async function taskList(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  if (request.method !== "GET") {
    return errorResponse(new InteropError("method_not_allowed", `Method ${request.method} not allowed on ${A2A_PREFIX}: use GET`), { allow: "GET" });
  }
  const viewer = caller === "anyone" || caller.admin ? "all" : caller.agent;
  return jsonResponse(200, { tasks: await recentTasks(broker, viewer, caller === "anyone" ? DEFAULT_A2A_SENDER : caller.agent) });
}

function splitPath(pathname: string): { agent: string; rest: string } {
  const path = pathname.slice(A2A_PREFIX.length + 1);
  const slash = path.indexOf("/");
  return slash === -1 ? { agent: path, rest: "" } : { agent: path.slice(0, slash), rest: path.slice(slash) };
}

interface RpcCall {
  id: string | number;
  method: unknown;
  /** As the request had it: checked by callParams once the id is known. */
  params: unknown;
}

/** One JSON-RPC request object. Batches are refused: each A2A call is one POST (the spec's clients send no other). */
function parseCall(text: string): RpcCall {
  try {
    refuseUnkeptJson(text);
  } catch (error) {
    throw new A2aError(A2A_ERROR.invalidRequest, (error as Error).message);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new A2aError(A2A_ERROR.parseError, `Parse error: ${(cause as Error).message}`);
  }
  if (Array.isArray(value)) {
    throw new A2aError(A2A_ERROR.invalidRequest, "Invalid request: JSON-RPC batches are not supported; send one request per POST");
  }
  if (!isObject(value) || value.jsonrpc !== "2.0" || typeof value.method !== "string") {
    throw new A2aError(A2A_ERROR.invalidRequest, 'Invalid request: send {"jsonrpc": "2.0", "id": ID, "method": METHOD, "params": {…}}');
  }
  if (!(typeof value.id === "string" || (typeof value.id === "number" && Number.isFinite(value.id)))) {
    throw new A2aError(A2A_ERROR.invalidRequest, "Invalid request: id must be a string or a number (notifications get no answer here)");
  }
  return { id: value.id, method: value.method, params: value.params };
}

/** The call's params, checked once its id is known (a refusal answers with that id, as the request had one). */
function callParams(params: unknown): Record<string, unknown> {
  if (params !== undefined && !isObject(params)) {
    throw new A2aError(A2A_ERROR.invalidParams, "Invalid params: params must be an object");
  }
  return params ?? {};
}
