/** The broker's HTTP API: the old bridge's routes (`/broadcast`, `/poll`, `/subscribe`, `/status`) and interop's own. */
import { cardResponse, DEFAULT_A2A_REPLY_WAIT_MS, DEFAULT_A2A_SENDER, handleA2a, isA2aPath } from "../a2a/inbound.ts";
import { HELD_ANSWER_KEEPALIVE_MS } from "../a2a/held_answer.ts";
import { TaskChanges } from "../a2a/task_watch.ts";
import { LEASE_HEADER, LEASE_LOST_HEADER } from "../broker/inbox_leases.ts";
import { leasedWait } from "../broker/leased_wait.ts";
import { type Authenticator, authorize, type Caller } from "../auth/authenticator.ts";
import type { Broker, HistoryEntry } from "../broker/broker.ts";
import type { StreamFormat } from "../broker/stream_format.ts";
import type { BrokerMetrics } from "../metrics/broker_metrics.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, isBatch, parseAgentName, parseBatch, parsePayload, toWire } from "../message.ts";
import { type Handler, type IncomingRequest, isStream, type OutgoingResponse, READING_PAUSED } from "../runtime/types.ts";
import { agentsRoute } from "./agent_routes.ts";
import { leaving, settling, untilSettled } from "./client_settle.ts";
import { LeaseRevocations } from "./lease_revocations.ts";
import { AgentShares } from "./agent_shares.ts";
import { listDeadLetters, parkDeadLetter } from "./dead_letter_routes.ts";
import { errorResponse } from "./error_response.ts";
import { handleNtfy, isNtfyPath, NTFY_PREFIX, ntfyRequester } from "./ntfy.ts";
import { dashboardResponse, eventsFeed, metricsResponse, statsResponse } from "./operator_routes.ts";
import { parseHoldReply, parseIdempotencyKey, parseLastEventId, parseLeaseSeconds, parseLimit, parseMessageId, parsePeek, parseTimeout } from "./query_params.ts";
import { isOperatorLook } from "./request_limits.ts";
import { heldAnswer, jsonResponse, jsonTextResponse, streamResponse, watchStream } from "./responses.ts";
import { sseFormat } from "./sse_format.ts";

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
  const leaseRevocations = new LeaseRevocations(options.auth, broker.leases);
  const routes: Record<string, Partial<Record<string, Route>>> = {
    "/broadcast": { POST: (request, caller) => broadcast(broker, request, caller, options.maxBodyBytes) },
    "/poll": { GET: (request, caller) => poll(broker, request, caller, leaseRevocations) },
    "/wait": { GET: (request, caller) => wait(broker, options.auth, request, caller, leaseRevocations) },
    "/ask": { POST: (request, caller) => ask(broker, options.auth, request, caller, options.maxBodyBytes) },
    "/subscribe": { GET: (request, caller) => subscribe(broker, request, caller, streamFormats) },
    "/status": { GET: () => Promise.resolve(jsonTextResponse(200, broker.statusJson())) },
    "/dead-letters": {
      GET: (request, caller) => listDeadLetters(broker, request, caller),
      POST: (request, caller) => parkDeadLetter(broker, request, caller),
    },
    "/agents": {
      GET: (request, caller) => agentsRoute(broker, request, caller),
      POST: (request, caller) => agentsRoute(broker, request, caller),
      DELETE: (request, caller) => agentsRoute(broker, request, caller),
    },
    "/events": { GET: (_request, caller) => Promise.resolve(eventsFeed(broker, caller, options.retryMs)) },
    "/history": { GET: (request, caller) => history(broker, request, caller) },
    "/metrics": { GET: (_request, caller) => Promise.resolve(metricsResponse(options.metrics, caller)) },
    "/stats": { GET: (_request, caller) => Promise.resolve(statsResponse(options.metrics, caller)) },
  };
  const a2a = {
    auth: options.auth,
    maxBodyBytes: options.maxBodyBytes,
    changes: new TaskChanges(),
    replyWaitMs: options.a2aWaitMs ?? DEFAULT_A2A_REPLY_WAIT_MS,
    keepaliveMs: options.a2aKeepaliveMs ?? HELD_ANSWER_KEEPALIVE_MS,
    onInternalError: options.onInternalError,
  };
  const shares = options.maxRequestsPerAgent === undefined ? undefined : new AgentShares(options.maxRequestsPerAgent);
  const dispatch = async (request: IncomingRequest): Promise<OutgoingResponse> => {
    const { pathname } = request.url;
    // The dashboard's page and script hold no data: they load without a token and then ask for one.
    if (request.method === "GET" && (pathname === "/ui" || pathname === "/ui/app.js")) return Promise.resolve(dashboardResponse(pathname));
    if (request.method === "GET" && pathname === "/") return Promise.resolve({ status: 302, headers: { location: "/ui" }, body: "" });
    if (pathname === "/status" && request.method === "GET" && !hasCredentials(request) && await options.auth.on()) {
      // Cron and load balancers may ask whether the broker is alive without a token; the details need one.
      return Promise.resolve(jsonResponse(200, { service: "interop", ok: true, details: "send a token for details" }));
    }
    // An agent card is public, as A2A clients fetch it before they authenticate.
    const card = cardResponse(request, options.a2aOriginAgent);
    if (card !== undefined) return Promise.resolve(card);
    const caller = await options.auth.identify(request);
    if (shares === undefined || isOperatorLook(request)) return await answer(request, caller);
    return await shares.hold(shareHolder(request, caller), () => answer(request, caller));
  };
  // Async, so that a refusal thrown here rejects the promise its share waits on (and frees the place).
  const answer = async (request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> => {
    const { pathname } = request.url;
    if (isA2aPath(pathname)) return await endOnRevocation(options.auth, caller, handleA2a(broker, request, caller, a2a));
    if (isNtfyPath(pathname)) {
      return await endOnRevocation(options.auth, caller, handleNtfy(broker, request, caller, options.maxBodyBytes));
    }
    const methods = routes[pathname];
    if (methods === undefined) {
      throw new InteropError(
        "not_found",
        `Not found: ${pathname}; the routes are POST /broadcast, GET /poll, GET /wait, POST /ask, GET /subscribe, GET /status, ` +
          `GET|POST /dead-letters, GET|POST|DELETE /agents, GET /events, GET /history, GET /metrics, GET /stats, GET /ui, ${NTFY_PREFIX}/TOPIC and POST /a2a/AGENT`,
      );
    }
    const route = methods[request.method];
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
      return errorResponse(error);
    }
  };
}

async function broadcast(broker: Broker, request: IncomingRequest, caller: Caller, maxBodyBytes: number): Promise<OutgoingResponse> {
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
  const { envelopes: stored, refused, refusalsUnknown } = holdReplyMs === undefined
    ? await broker.publishBatch(from, to, payloads, options)
    : { envelopes: [await broker.publishHoldingReply(from, to!, payloads[0], holdReplyMs, options)], refused: [], refusalsUnknown: false };
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

async function poll(broker: Broker, request: IncomingRequest, caller: Caller, revocations: LeaseRevocations): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "read the inbox of");
  const { searchParams } = request.url;
  const limit = parseLimit(searchParams.get("limit"));
  const peek = parsePeek(searchParams.get("peek"));
  const leaseSeconds = parseLeaseSeconds(searchParams.get("lease"), peek);
  const leaseId = searchParams.get("lease_id") ?? undefined;
  const shownUpTo = parseMessageId(searchParams.get("up_to"), "up_to");
  const takeOne = parseMessageId(searchParams.get("take"), "take");
  if (takeOne !== undefined && (leaseId === undefined || peek || shownUpTo !== undefined)) {
    throw new InteropError("invalid_query", "take=ID takes what a leased wait showed: give lease_id= (its lease), without peek or up_to");
  }
  // A take with `up_to` acknowledges what its client already showed (interop poll): losing its answer loses nothing,
  // so it need not wait to see whether the client closed with it.
  const settled = peek || shownUpTo !== undefined ? undefined : settling(request.clientGone());
  // A lease's id says its client had the inbox here: after the operator removed the agent (its lease with it), the
  // holder's take is told so, rather than create the inbox again and answer an empty take of what it was shown.
  await refuseRemoved(broker, request, agent, leaseId !== undefined);
  // Built before the take commits, within the broker's budget: a take is committed only for an answer that exists.
  // JSON.stringify per message: wireJson's shared-prefix cache pays only for a broadcast's copies, not an inbox's.
  // A take of nothing (`up_to=0`: a leased reader ending its lease) carries no message, so it holds no memory for
  // answers: refused 429 while the reader's shown answer was still unread, the lease ran out instead of ending, and
  // the inbox's next reader waited its length.
  const carriesNone = !peek && shownUpTo === 0;
  // A leased reader's take of what it showed goes past the agent's bound, one at a time (AnswerMemory.hold).
  const leasedTake = !peek && leaseId !== undefined;
  const answer = broker.answer((envelope) => JSON.stringify(toWire(envelope)), carriesNone ? undefined : agent, leasedTake);
  return await heldAnswer(answer, async () => {
    // A peek with its own lease's id renews it (interop poll, while a slow reader holds up what it prints).
    const lease = leaseSeconds === undefined ? undefined : await broker.leases.acquire(agent, leaseSeconds, leaseId);
    if (lease !== undefined) revocations.watch(caller, agent, lease, leaseSeconds!);
    // A take under a lease no longer held (expired; a broker of its own restarted) says so: what its client was shown
    // and does not find in the answer, another reader took meanwhile (or the operator removed).
    let leaseLost = false;
    const lost = () => (leaseLost = true);
    const messages = peek
      ? await broker.peek(agent, limit, answer).catch((error) => {
        // A peek that failed shows nothing: its lease would only hold the others off.
        if (lease !== undefined) broker.leases.end(agent, lease);
        throw error;
      })
      : await untilSettled(settled).then(() =>
        broker.leases.take(agent, leaseId, async (lease) => {
          const options = { answer, clientGone: leaving(request.clientGone()), lease, leaseLost: lost };
          if (takeOne === undefined) return await broker.poll(agent, limit, { ...options, shownUpTo });
          return [await broker.takeOne(agent, takeOne, options)].filter((message) => message !== undefined);
        }, lost).finally(() => {
          if (leaseId !== undefined) revocations.forget(leaseId);
        })
      );
    // The ids' store: a client that keeps ids can tell when a broker holds another store's.
    const headers = {
      "interop-store": broker.storeId,
      ...(lease === undefined ? {} : { [LEASE_HEADER]: lease }),
      ...(leaseLost ? { [LEASE_LOST_HEADER]: "true" } : {}),
      ...answer.headers(),
    };
    return jsonTextResponse(200, await answer.body(messages), headers);
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

/**
 * Long poll: the next message for the agent (taken, as by /poll), or with `reply_to` the reply to that message of
 * the agent's (taken out of order), or 204 after `timeout` seconds; 401 at once, taking nothing, when the caller's
 * token is revoked meanwhile.
 */
async function wait(
  broker: Broker,
  auth: Authenticator,
  request: IncomingRequest,
  caller: Caller,
  revocations: LeaseRevocations,
): Promise<OutgoingResponse> {
  const { searchParams } = request.url;
  const agent = parseAgentName(searchParams.get("agent"), "agent");
  authorize(caller, agent, "read the inbox of");
  const timeoutMs = parseTimeout(searchParams.get("timeout"));
  const replyTo = parseMessageId(searchParams.get("reply_to"), "reply_to");
  const peek = parsePeek(searchParams.get("peek"));
  // Parsed here too: a lease on a wait that takes (no peek) is refused, not dropped while the message is taken.
  const leaseSeconds = parseLeaseSeconds(searchParams.get("lease"), peek);
  // Refused, not ignored: a client that believed its wait took (or renewed) under its lease would take out of order.
  if (searchParams.has("lease_id")) {
    throw new InteropError(
      "invalid_query",
      "A /wait takes no lease_id: take what a lease showed with /poll?agent=X&up_to=ID&lease_id=LEASE (a reply a leased " +
        "reply wait showed with take=ID; up_to=0 takes nothing and ends the lease), and renew it with " +
        "/poll?agent=X&peek=1&lease=S&lease_id=LEASE",
    );
  }
  if (peek) return await leasedWaitAnswer(broker, { auth, revocations }, request, caller, agent, timeoutMs, leaseSeconds, replyTo);
  const settled = settling(request.clientGone());
  await refuseRemoved(broker, request, agent);
  if (replyTo !== undefined) await broker.refuseUnanswerable(agent, replyTo);
  const deadline = Date.now() + timeoutMs;
  const { result: message, revoked } = await untilRevoked(auth, caller, request, async (signal) => {
    await untilSettled(settled);
    // While a reader holds the inbox (interop poll), what it showed is its to take: the wait waits for it first.
    // After the settle clock, not before: a peek that leased the inbox during those 20 ms showed what a take made
    // after them would hand out again.
    await broker.leases.whenFree(agent, AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]));
    const left = deadline - Date.now();
    if (left <= 0 || signal.aborted) return undefined;
    return replyTo === undefined ? await broker.wait(agent, left, signal) : await broker.waitForReply(agent, replyTo, left, signal);
  });
  if (message === undefined && revoked) throw tokenRevoked(caller, "nothing was taken from the inbox");
  // The store's identity: a client that waits again says it had the inbox there (see refuseRemoved).
  const headers = { "interop-store": broker.storeId };
  return message === undefined ? { status: 204, headers, body: "" } : jsonResponse(200, toWire(message), headers);
}

/**
 * `/wait?peek=1&lease=S`: the next message for the agent, taken by no one, shown under a lease of S seconds (its id
 * in the `interop-lease` header) for the client to take with `/poll?up_to=ID&lease_id=`; or 204 after `timeout`.
 * With `reply_to=Q`: the reply to the agent's message Q, for the client to take alone with `/poll?take=ID&lease_id=`.
 */
async function leasedWaitAnswer(
  broker: Broker,
  { auth, revocations }: { auth: Authenticator; revocations: LeaseRevocations },
  request: IncomingRequest,
  caller: Caller,
  agent: AgentName,
  timeoutMs: number,
  leaseSeconds: number | undefined,
  replyTo: number | undefined,
): Promise<OutgoingResponse> {
  if (leaseSeconds === undefined) throw new InteropError("invalid_query", "A /wait with peek=1 needs lease=S (1-300 seconds)");
  await refuseRemoved(broker, request, agent);
  if (replyTo !== undefined) await broker.refuseUnanswerable(agent, replyTo);
  // Held to the memory for answers as a peek's answer is: a client that ends each lease with up_to=0 and reads no
  // answer had the same message built again for every wait, unbounded (30 unread waits on a 15 MiB message: 672 MB).
  const answer = broker.answer((envelope) => JSON.stringify(toWire(envelope)), agent);
  return await heldAnswer(answer, async () => {
    const { result: shown, revoked } = await untilRevoked(auth, caller, request, (signal) => leasedWait(broker, agent, leaseSeconds, timeoutMs, signal, { answer, replyTo }));
    if (shown === undefined && revoked) throw tokenRevoked(caller, "nothing was taken from the inbox");
    const headers = { "interop-store": broker.storeId };
    if (shown === undefined) return { status: 204, headers, body: "" };
    revocations.watch(caller, agent, shown.lease, leaseSeconds);
    const [text] = answer.texts([shown.message]);
    return jsonTextResponse(200, text, { ...headers, [LEASE_HEADER]: shown.lease });
  });
}

const ASK_ALONE = "Send an ask on a connection of its own, kept open, to wait for its reply";

/**
 * Publishes a question and answers with the reply to it, or 504 when none came within `timeout` seconds; 401 at
 * once when the caller's token is revoked meanwhile (the reply then lands in the asker's inbox).
 */
async function ask(broker: Broker, auth: Authenticator, request: IncomingRequest, caller: Caller, maxBodyBytes: number): Promise<OutgoingResponse> {
  const from = parseAgentName(request.url.searchParams.get("from"), "from");
  authorize(caller, from, "ask as");
  const to = parseAgentName(request.url.searchParams.get("to"), "to");
  const timeoutMs = parseTimeout(request.url.searchParams.get("timeout"));
  const payload = parsePayload(await request.text(maxBodyBytes), request.header("content-type"));
  const settled = settling(request.clientGone());
  const { result: { question, reply }, revoked } = await untilRevoked(
    auth,
    caller,
    request,
    (signal) => broker.ask(from, to, payload, timeoutMs, signal, settled),
  );
  if (reply === undefined && revoked) throw tokenRevoked(caller, `a reply to message ${question.id} will be in ${from}'s inbox`);
  // Ended by the connection or by the broker stopping, not the clock: "no reply within" the time asked for would be
  // false, and a client that half-closed, or pipelined past what is read, may still read this answer.
  const gone = request.clientGone();
  if (reply === undefined && (gone.aborted || broker.stopping.aborted)) {
    const [why, advice] = !gone.aborted
      ? ["the broker is stopping", `Once the broker is back, wait for it there (GET /wait?agent=${from}&reply_to=${question.id}), not by asking again: that sends the question again`]
      : gone.reason === READING_PAUSED
      ? ["this connection pipelined further requests while the ask waited (a connection not read cannot show its client leaving)", ASK_ALONE]
      : ["the client closed its side of the connection (a half-close reads as leaving)", ASK_ALONE];
    throw new InteropError(
      "ask_interrupted",
      `Ended early: ${why}, so the wait for ${to}'s reply to message ${question.id} ended; the reply, when it ` +
        `comes, will be in ${from}'s inbox. ${advice}`,
    );
  }
  if (reply === undefined) {
    throw new InteropError(
      "reply_timeout",
      `No reply from ${to} to message ${question.id} within ${timeoutMs / 1000} s; a later reply will be in ${from}'s inbox`,
    );
  }
  return jsonResponse(200, { question: question.id, reply: toWire(reply) });
}

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
  const start = await broker.prepareStream(
    agent,
    lastEventId === undefined
      ? { from: "cursor" }
      : { from: "id", afterId: lastEventId, ...(store === "" ? {} : { store }), ...(hadInboxOn === "" ? {} : { hadInboxOn }) },
    request.header("accept")?.includes("text/event-stream") ? formats.named : formats.plain,
  );
  return streamResponse("text/event-stream; charset=utf-8", start, { "interop-store": broker.storeId });
}

/**
 * A read by a client that had the agent's inbox on this store (`Interop-Had-Inbox: STORE`, the `Interop-Store` of an
 * earlier answer) is refused with 410 `agent_removed` when the operator removed the agent since: reading would
 * create the inbox again (a reader announces itself). As for a resumed /subscribe. `hadInboxHere`: the request
 * itself shows it had the inbox on this store.
 */
function refuseRemoved(broker: Broker, request: IncomingRequest, agent: AgentName, hadInboxHere = false): Promise<void> {
  return broker.refuseRemoved(agent, hadInboxHere ? broker.storeId : request.header("interop-had-inbox") || undefined);
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
 * Runs a wait with a signal that aborts when its client leaves or, as streams end (endOnRevocation), once the
 * caller's token is revoked: either way the waiter takes nothing more. Says whether revocation cut it.
 */
async function untilRevoked<T>(
  auth: Authenticator,
  caller: Caller,
  request: IncomingRequest,
  wait: (signal: AbortSignal) => Promise<T>,
): Promise<{ result: T; revoked: boolean }> {
  const revocation = new AbortController();
  const unwatch = auth.watchRevocation(caller, () => revocation.abort());
  try {
    return { result: await wait(AbortSignal.any([request.clientGone(), revocation.signal])), revoked: revocation.signal.aborted };
  } finally {
    unwatch();
  }
}

function tokenRevoked(caller: Caller, consequence: string): InteropError {
  const what = caller === "anyone" ? "Tokens turned on while waiting" : "Token revoked while waiting";
  return new InteropError("unauthorized", `${what}: ${consequence}; create a token with 'interop token create'`);
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
