/** The broker's HTTP API: the old bridge's routes (`/broadcast`, `/poll`, `/subscribe`, `/status`) and interop's own. */
import { cardResponse, DEFAULT_A2A_REPLY_WAIT_MS, DEFAULT_A2A_SENDER, handleA2a, isA2aPath } from "../a2a/inbound.ts";
import { HELD_ANSWER_KEEPALIVE_MS } from "../a2a/held_answer.ts";
import { taskFollowerPlaces } from "../a2a/task_followers.ts";
import { TaskChanges } from "../a2a/task_watch.ts";
import { type Authenticator, authorize, type Caller } from "../auth/authenticator.ts";
import type { Broker, HistoryEntry } from "../broker/broker.ts";
import type { StreamFormat } from "../broker/stream_format.ts";
import type { BrokerMetrics } from "../metrics/broker_metrics.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, isBatch, parseAgentName, parseBatch, parsePayload, toWire } from "../message.ts";
import { type Handler, type IncomingRequest, isStream, type OutgoingResponse } from "../runtime/types.ts";
import { agentsRoute } from "./agent_routes.ts";
import { AgentShares } from "./agent_shares.ts";
import { GrantRevocations } from "./grant_revocations.ts";
import { acknowledgeDeadLetters, listDeadLetters, parkDeadLetter, redeliverDeadLetters } from "./dead_letter_routes.ts";
import { errorResponse } from "./error_response.ts";
import { isLook } from "./methods.ts";
import { handleNtfy, isNtfyPath, NTFY_PREFIX, ntfyRequester } from "./ntfy.ts";
import { dashboardResponse, eventsRoute, metricsResponse, statsResponse } from "./operator_routes.ts";
import { parseHoldReply, parseIdempotencyKey, parseLastEventId, parseLimit, parseMessageId, refuseRepeatedParams } from "./query_params.ts";
import { isOperatorLook } from "./request_limits.ts";
import { heldAnswer, jsonResponse, jsonTextResponse, streamResponse, watchStream } from "./responses.ts";
import { sseFormat } from "./sse_format.ts";
import { askRoute, pollRoute, readingAsHolder, waitRoute } from "./take_routes.ts";

export interface RouterOptions {
  auth: Authenticator;
  metrics: BrokerMetrics;
  maxBodyBytes: number;
  /** How long a blocking A2A SendMessage waits for the reply (`serve --a2a-wait`); 5 minutes when unset. */
  a2aWaitMs?: number;
  /** How often a blocking A2A SendMessage still waiting writes a space; HELD_ANSWER_KEEPALIVE_MS when unset (tests shorten it). */
  a2aKeepaliveMs?: number;
  /** The agent whose strict A2A card is served at the origin (`serve --a2a-origin-agent`); none: a 404 there. */
  a2aOriginAgent?: AgentName;
  /** The URL clients reach the broker by, which the A2A cards advertise (`serve --public-url`); unset: the request's Host. */
  publicUrl?: string;
  /** The `retry:` advice sent to EventSource clients, in ms. */
  retryMs: number;
  /** Requests one agent may have in progress at once (`serve --max-requests-per-agent`); unset: no share. */
  maxRequestsPerAgent?: number;
  /** Called with errors that are bugs (not `InteropError`), for the log. */
  onInternalError(error: unknown): void;
}

type Route = (request: IncomingRequest, caller: Caller) => Promise<OutgoingResponse>;

export function createRouter(broker: Broker, options: RouterOptions): Handler {
  // Made once for every stream: each open stream keeps its format, and one made per stream was four closures more each.
  const streamFormats = { named: sseFormat(options.retryMs, true), plain: sseFormat(options.retryMs, false) };
  const revocations = new GrantRevocations(options.auth);
  const events = eventsRoute(broker, options.retryMs);
  const routes: Record<string, Partial<Record<string, Route>>> = {
    "/broadcast": { POST: (request, caller) => broadcast(broker, request, caller, options.maxBodyBytes, revocations) },
    "/poll": { GET: (request, caller) => pollRoute(broker, request, caller, revocations) },
    "/wait": { GET: (request, caller) => waitRoute(broker, options.auth, request, caller, revocations) },
    "/ask": { POST: (request, caller) => askRoute(broker, options.auth, request, caller, options.maxBodyBytes) },
    "/subscribe": { GET: (request, caller) => subscribe(broker, request, caller, streamFormats) },
    "/status": { GET: async () => jsonTextResponse(200, await broker.statusJson()) },
    "/dead-letters": {
      GET: (request, caller) => listDeadLetters(broker, request, caller),
      POST: (request, caller) => parkDeadLetter(broker, request, caller),
    },
    "/dead-letters/acknowledge": { POST: (request, caller) => acknowledgeDeadLetters(broker, request, caller) },
    "/dead-letters/redeliver": { POST: (request, caller) => redeliverDeadLetters(broker, request, caller) },
    "/agents": {
      GET: (request, caller) => agentsRoute(broker, request, caller),
      POST: (request, caller) => agentsRoute(broker, request, caller),
      DELETE: (request, caller) => agentsRoute(broker, request, caller),
    },
    "/events": { GET: (_request, caller) => events(caller) },
    "/history": { GET: (request, caller) => history(broker, request, caller) },
    "/metrics": { GET: (_request, caller) => Promise.resolve(metricsResponse(options.metrics, caller)) },
    "/stats": { GET: (_request, caller) => Promise.resolve(statsResponse(options.metrics, caller)) },
  };
  const a2a = {
    auth: options.auth,
    maxBodyBytes: options.maxBodyBytes,
    changes: new TaskChanges(),
    taskFollowers: taskFollowerPlaces(),
    replyWaitMs: options.a2aWaitMs ?? DEFAULT_A2A_REPLY_WAIT_MS,
    keepaliveMs: options.a2aKeepaliveMs ?? HELD_ANSWER_KEEPALIVE_MS,
    onInternalError: options.onInternalError,
  };
  const shares = options.maxRequestsPerAgent === undefined ? undefined : new AgentShares(options.maxRequestsPerAgent);
  const dispatch = async (request: IncomingRequest): Promise<OutgoingResponse> => {
    const { pathname } = request.url;
    // The dashboard's page and script hold no data: they load without a token and then ask for one. A HEAD of
    // them (a monitor's, a link checker's) is answered as their GET, without the body.
    if (isLook(request.method) && (pathname === "/ui" || pathname === "/ui/app.js")) return Promise.resolve(dashboardResponse(pathname));
    if (isLook(request.method) && pathname === "/") return Promise.resolve({ status: 302, headers: { location: "/ui" }, body: "" });
    if (pathname === "/status" && isLook(request.method) && !hasCredentials(request) && await options.auth.on()) {
      // Cron and load balancers may ask whether the broker is alive without a token; the details need one. A token
      // list it cannot read (a hand-edited tokens.json) refuses every request until fixed: 503, not "ok". PostgreSQL
      // away is an outage the broker rides out (it serves again by itself): alive, as the details say to a token.
      // Said without the file's path or what is wrong with it: those are for a token holder (its requests say them).
      await options.auth.current().catch((error) => {
        if (error instanceof InteropError && error.code === "storage_unavailable") return;
        throw new InteropError("storage_failed", "The broker cannot read its tokens: every request is refused until they are fixed (a request with a token says why)", {
          cause: error,
        });
      });
      return jsonResponse(200, { service: "interop", ok: true, details: "send a token for details" });
    }
    // An agent card is public, as A2A clients fetch it before they authenticate.
    const card = cardResponse(request, options.a2aOriginAgent, options.publicUrl);
    if (card !== undefined) return Promise.resolve(card);
    const caller = await options.auth.identify(request);
    if (shares === undefined || isOperatorLook(request)) return await answer(request, caller);
    return await shares.hold(shareHolder(request, caller), () => answer(request, caller));
  };
  // Async, so that a refusal thrown here rejects the promise its share waits on (and frees the place).
  const answer = async (received: IncomingRequest, caller: Caller): Promise<OutgoingResponse> => {
    const { pathname } = received.url;
    refuseEncodedBody(received);
    refuseRepeatedParams(received.url);
    const request = confirmedAfterBody(received, options.auth, caller);
    if (isA2aPath(pathname)) return await endOnRevocation(options.auth, caller, handleA2a(broker, request, caller, a2a));
    if (isNtfyPath(pathname)) {
      return await endOnRevocation(options.auth, caller, handleNtfy(broker, request, caller, options.maxBodyBytes));
    }
    const methods = routes[pathname];
    if (methods === undefined) {
      throw new InteropError(
        "not_found",
        `Not found: ${pathname}; the routes are POST /broadcast, GET /poll, GET /wait, POST /ask, GET /subscribe, GET /status, ` +
          `GET|POST /dead-letters, POST /dead-letters/acknowledge, POST /dead-letters/redeliver, GET|POST|DELETE /agents, GET /events, GET /history, GET /metrics, GET /stats, GET /ui, ${NTFY_PREFIX}/TOPIC and POST /a2a/AGENT`,
      );
    }
    // HEAD as GET where a GET only looks (uptime monitors ask HEAD /status); the server sends no body for a HEAD.
    const route = methods[request.method] ?? (request.method === "HEAD" && HEAD_AS_GET.has(pathname) ? methods.GET : undefined);
    if (route === undefined) {
      const allow = Object.keys(methods).join(", ");
      const error = new InteropError("method_not_allowed", `Method ${request.method} not allowed on ${pathname}: use ${allow}`);
      return errorResponse(error, { allow });
    }
    return await endOnRevocation(options.auth, caller, route(request, caller));
  };
  return async (request) => {
    try {
      return await dispatch(request);
    } catch (error) {
      if (!(error instanceof InteropError)) options.onInternalError(error);
      // A removal is this store's: a client whose first read of the inbox the removal ended (a wait) learns on which
      // store it had the inbox, and its next read says so rather than creating the inbox again.
      const removedHere = error instanceof InteropError && error.code === "agent_removed";
      return errorResponse(error, removedHere ? { "interop-store": broker.storeId } : {});
    }
  };
}

async function broadcast(
  broker: Broker,
  request: IncomingRequest,
  caller: Caller,
  maxBodyBytes: number,
  revocations: GrantRevocations,
): Promise<OutgoingResponse> {
  const from = parseAgentName(request.url.searchParams.get("from"), "from");
  authorize(caller, from, "send as");
  const toParam = request.url.searchParams.get("to");
  const to = toParam === null ? undefined : parseAgentName(toParam, "to");
  const replyTo = parseMessageId(request.url.searchParams.get("reply_to"), "reply_to");
  const holdReplyMs = parseHoldReply(request.url.searchParams.get("hold_reply"));
  const contentType = request.header("content-type");
  if (holdReplyMs !== undefined && (to === undefined || isBatch(contentType))) {
    throw new InteropError("invalid_query", "hold_reply holds the reply to one question: publish one message, with to=NAME");
  }
  const body = await request.text(maxBodyBytes);
  // A batch (one JSON object per line) is committed at once: all of it, or none.
  const payloads = isBatch(contentType) ? parseBatch(body) : [parsePayload(body, contentType)];
  const options = { replyTo, idempotencyKey: parseIdempotencyKey(request), queued: request.ordered };
  // A question whose reply is held for its sender is the sender reading its inbox, as an /ask is: refused for a
  // client that had that inbox here once the operator removed the agent (made again, `interop mcp`'s ask waited on
  // for a reply that had no inbox to go to).
  const holdingReply = () =>
    readingAsHolder(broker, request, from, false, async () => {
      const question = await broker.publishHoldingReply(from, to!, payloads[0], holdReplyMs!, options);
      // Watched while the hold lasts (a wait may take it over, or a newer one end it, long before its seconds).
      const key = `reply hold ${from} ${question.id}`;
      const endHold = broker.whenReplyHoldEnds(from, question.id, () => revocations.forget(key));
      if (endHold !== undefined) revocations.watch(caller, key, holdReplyMs!, endHold);
      return question;
    });
  const { envelopes: stored, refused, refusalsUnknown } = holdReplyMs === undefined
    ? await broker.publishBatch(from, to, payloads, options)
    : { envelopes: [await holdingReply()], refused: [], refusalsUnknown: false };
  return jsonResponse(200, {
    delivered: true,
    messages: payloads.length,
    id: stored[0].id,
    ids: stored.map((envelope) => envelope.id),
    to: stored.map((envelope) => envelope.to),
    timestamp: stored[0].timestamp,
    // A broadcast that left out a full inbox says so: who, and why.
    ...(refused.length > 0 ? { refused } : {}),
    // A retried keyed broadcast whose first attempt's refusals this broker did not keep: it cannot say none were.
    ...(refusalsUnknown ? { refusals_unknown: true } : {}),
  });
}

/**
 * `GET /history?agent=NAME[&limit=N]`: the inbox's last N messages (default 1000), oldest first, each with
 * `interop.pending`, so the dashboard shows what waits and what passed before it opened. Reading takes nothing.
 */
async function history(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "read the inbox of");
  const answer = broker.answer(({ envelope, pending }: HistoryEntry) => {
    const wire = toWire(envelope);
    return JSON.stringify({ ...wire, interop: { ...wire.interop, pending } });
  }, agent);
  return await heldAnswer(answer, async () => {
    // The newest that fit in one answer (a 500 would show the dashboard nothing of the inbox), oldest first.
    const entries = await broker.history(agent, parseLimit(request.url.searchParams.get("limit")), answer);
    return jsonTextResponse(200, await answer.body(entries), answer.headers());
  });
}

/** Routes whose GET only looks, answered to a HEAD as to a GET (without the body). */
const HEAD_AS_GET = new Set(["/status", "/metrics"]);

async function subscribe(
  broker: Broker,
  request: IncomingRequest,
  caller: Caller,
  formats: { named: StreamFormat; plain: StreamFormat },
): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "read the inbox of");
  const lastEventId = parseLastEventId(
    request.header("last-event-id") ?? request.url.searchParams.get("last_event_id"),
  );
  const store = request.header("interop-store") ?? request.url.searchParams.get("store") ?? "";
  const hadInboxOn = request.header("interop-had-inbox") ?? "";
  const { open, resumedAfter } = await broker.prepareStream(
    agent,
    lastEventId === undefined
      ? { from: "cursor" }
      : { from: "id", afterId: lastEventId, ...(store === "" ? {} : { store }), ...(hadInboxOn === "" ? {} : { hadInboxOn }) },
    request.header("accept")?.includes("text/event-stream") ? formats.named : formats.plain,
  );
  // The id a client named by another store (the SQLite store migrated here) taken as this store's: it keeps it.
  const headers: Record<string, string> = { "interop-store": broker.storeId };
  if (resumedAfter !== undefined) headers["interop-resumed-after"] = String(resumedAfter);
  return streamResponse("text/event-stream; charset=utf-8", open, headers);
}

/**
 * A body sent compressed (`Content-Encoding: gzip`, …, or a transfer coding other than chunked) is refused for what
 * it is: read as it came, its bytes are not the UTF-8 text of a message ("not valid UTF-8" would send its client
 * looking in the wrong place). A request that declares no body (no Transfer-Encoding, no length above 0) is served
 * whatever its Content-Encoding says (a client library that sets the field on every request, a GET among them).
 */
function refuseEncodedBody(request: IncomingRequest): void {
  // Both runtimes' parsers take any transfer coding that ends in chunked, and hand over the body unchunked but still
  // coded (`gzip, chunked`): refused as RFC 9112 says, not read as the message's text.
  const transfer = request.header("transfer-encoding");
  if (transfer !== null && !/^\s*chunked\s*$/i.test(transfer)) {
    throw new InteropError(
      "unsupported_transfer_coding",
      `Transfer-Encoding ${JSON.stringify(transfer.slice(0, 40))} is not supported: send the body as it is, or chunked alone`,
    );
  }
  const encoding = request.header("content-encoding");
  if (encoding === null || /^\s*(identity)?\s*$/i.test(encoding)) return;
  const declaresBody = request.header("transfer-encoding") !== null || !/^\s*0?\s*$/.test(request.header("content-length") ?? "");
  if (!declaresBody) return;
  throw new InteropError(
    "unsupported_encoding",
    `Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported: send the body uncompressed (no Content-Encoding)`,
  );
}

/**
 * `request`, whose body is read only for a caller still let in once it has arrived: the token was checked at the head,
 * and a body sent in parts may come up to --request-timeout later, after its token was revoked (it then published
 * as the revoked agent, or parked its dead letters).
 */
function confirmedAfterBody(request: IncomingRequest, auth: Authenticator, caller: Caller): IncomingRequest {
  return {
    method: request.method,
    url: request.url,
    header: (name) => request.header(name),
    headerBytes: () => request.headerBytes(),
    text: async (limit) => {
      const text = await request.text(limit);
      await auth.confirm(caller);
      return text;
    },
    clientGone: () => request.clientGone(),
    ordered: request.ordered,
  };
}

/**
 * A stream opened with a token is cut once the token is revoked, and one opened without a token once tokens are
 * on; its reconnect then gets 401.
 */
function endOnRevocation(auth: Authenticator, caller: Caller, answer: Promise<OutgoingResponse>): Promise<OutgoingResponse> {
  return answer.then((response) => {
    if (!isStream(response)) return response;
    let unwatch = () => {};
    return watchStream(response, (sink) => (unwatch = auth.watchRevocation(caller, () => sink.destroy())), () => unwatch());
  });
}

/**
 * Whose share a request takes: its token's agent; without tokens the agent it speaks for, as the broker records it:
 * an A2A call's sender (never its recipient, whose own waits it would crowd out), an ntfy publish's sender or the
 * inbox an ntfy read reads, else the agent a query names (`agent=`, else `from=`). A client may choose those freely,
 * so there the share guards against a runaway client rather than a malicious one.
 */
function shareHolder(request: IncomingRequest, caller: Caller): string {
  if (caller !== "anyone") return caller.agent;
  const { searchParams, pathname } = request.url;
  if (isA2aPath(pathname)) return DEFAULT_A2A_SENDER;
  if (isNtfyPath(pathname)) return ntfyRequester(request);
  return searchParams.get("agent") ?? searchParams.get("from") ?? "";
}

function hasCredentials(request: IncomingRequest): boolean {
  return request.header("authorization") !== null || request.url.searchParams.has("token");
}
