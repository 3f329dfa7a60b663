/**
 * The routes that take from an inbox: `/poll` (or a peek, under a lease), `/wait` (a long poll, or a leased wait that
 * shows), `/ask` (a question's reply); and how a long poll ends when its caller's token is revoked or its agent removed.
 */
import { type Authenticator, authorize, type Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import { LEASE_HEADER, LEASE_LOST_HEADER } from "../broker/inbox_leases.ts";
import { leasedWait } from "../broker/leased_wait.ts";
import { waitThroughRemoval } from "../broker/removal_waits.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, type Envelope, parseAgentName, parsePayload, toWire } from "../message.ts";
import { type IncomingRequest, type OutgoingResponse, READING_PAUSED } from "../runtime/types.ts";
import { leaving, settling, untilSettled } from "./client_settle.ts";
import type { GrantRevocations } from "./grant_revocations.ts";
import { parseLeaseId, parseLeaseSeconds, parseLimit, parseMessageId, parsePeek, parseTimeout } from "./query_params.ts";
import { heldAnswer, jsonResponse, jsonTextResponse } from "./responses.ts";
import { msUntil } from "../sleep.ts";

/**
 * `GET /poll`: takes up to `limit` of the agent's pending messages; with `peek`, shows them instead (under a lease
 * with `lease=S`); with `up_to`/`take` and `lease_id`, takes what a lease showed.
 */
export async function pollRoute(broker: Broker, request: IncomingRequest, caller: Caller, revocations: GrantRevocations): Promise<OutgoingResponse> {
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  authorize(caller, agent, "read the inbox of");
  const { searchParams } = request.url;
  const limit = parseLimit(searchParams.get("limit"));
  const peek = parsePeek(searchParams.get("peek"));
  const leaseSeconds = parseLeaseSeconds(searchParams.get("lease"), peek);
  const leaseId = parseLeaseId(searchParams.get("lease_id"));
  const shownUpTo = parseMessageId(searchParams.get("up_to"), "up_to");
  const takeOne = parseMessageId(searchParams.get("take"), "take");
  if (takeOne !== undefined && (leaseId === undefined || peek || shownUpTo !== undefined)) {
    throw new InteropError("invalid_query", "take=ID takes what a leased wait showed: give lease_id= (its lease), without peek or up_to");
  }
  // A take with `up_to` or `take` acknowledges what its client already showed (interop poll; an MCP ask's reply):
  // losing its answer loses nothing, so it need not wait to see whether the client closed with it.
  const settled = peek || shownUpTo !== undefined || takeOne !== undefined ? undefined : settling(request.clientGone());
  // A lease's id says its client had the inbox here: after the operator removed the agent (its lease with it), the
  // holder's take is told so, rather than create the inbox again and answer an empty take of what it was shown.
  return await readingAsHolder(broker, request, agent, leaseId !== undefined, async () => {
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
      if (lease !== undefined) watchLease(revocations, caller, broker, agent, lease, leaseSeconds!);
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
  });
}

/**
 * Long poll: the next message for the agent (taken, as by /poll), or with `reply_to` the reply to that message of
 * the agent's (taken out of order), or 204 after `timeout` seconds; at once, taking nothing, 401 when the caller's
 * token is revoked meanwhile, 410 when the operator removes the agent.
 */
export async function waitRoute(
  broker: Broker,
  auth: Authenticator,
  request: IncomingRequest,
  caller: Caller,
  revocations: GrantRevocations,
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
  return await readingAsHolder(broker, request, agent, false, async () => {
    if (replyTo !== undefined) await broker.refuseUnanswerable(agent, replyTo);
    const deadline = performance.now() + timeoutMs;
    const message = await untilEnded(broker, auth, caller, request, agent, "nothing was taken from the inbox", async (signal) => {
      await untilSettled(settled);
      // While a reader holds the inbox (interop poll), what it showed is its to take: the wait waits for it first.
      // After the settle clock, not before: a peek that leased the inbox during those 20 ms showed what a take made
      // after them would hand out again.
      await broker.leases.whenFree(agent, AbortSignal.any([signal, AbortSignal.timeout(msUntil(deadline))]));
      const left = msUntil(deadline);
      if (left <= 0 || signal.aborted) return undefined;
      return replyTo === undefined ? await broker.wait(agent, left, signal) : await broker.waitForReply(agent, replyTo, left, signal);
    });
    // The store's identity: a client that waits again says it had the inbox there (see readingAsHolder).
    const headers = { "interop-store": broker.storeId };
    return message === undefined ? { status: 204, headers, body: "" } : jsonResponse(200, toWire(message), headers);
  });
}

/**
 * `/wait?peek=1&lease=S`: the next message for the agent, taken by no one, shown under a lease of S seconds (its id
 * in the `interop-lease` header) for the client to take with `/poll?up_to=ID&lease_id=`; or 204 after `timeout`.
 * With `reply_to=Q`: the reply to the agent's message Q, for the client to take alone with `/poll?take=ID&lease_id=`.
 */
async function leasedWaitAnswer(
  broker: Broker,
  { auth, revocations }: { auth: Authenticator; revocations: GrantRevocations },
  request: IncomingRequest,
  caller: Caller,
  agent: AgentName,
  timeoutMs: number,
  leaseSeconds: number | undefined,
  replyTo: number | undefined,
): Promise<OutgoingResponse> {
  if (leaseSeconds === undefined) throw new InteropError("invalid_query", "A /wait with peek=1 needs lease=S (1-300 seconds)");
  return await readingAsHolder(broker, request, agent, false, async () => {
    if (replyTo !== undefined) await broker.refuseUnanswerable(agent, replyTo);
    // Held to the memory for answers as a peek's answer is: a client that ends each lease with up_to=0 and reads no
    // answer had the same message built again for every wait, unbounded (30 unread waits on a 15 MiB message: 672 MB).
    const answer = broker.answer((envelope) => JSON.stringify(toWire(envelope)), agent);
    return await heldAnswer(answer, async () => {
      const deadline = performance.now() + timeoutMs;
      const shown = await untilEnded(broker, auth, caller, request, agent, "nothing was taken from the inbox", (signal, resumed) => {
        const left = msUntil(deadline);
        return resumed && left <= 0 ? undefined : leasedWait(broker, agent, leaseSeconds, left, signal, { answer, replyTo });
      });
      const headers = { "interop-store": broker.storeId };
      if (shown === undefined) return { status: 204, headers, body: "" };
      watchLease(revocations, caller, broker, agent, shown.lease, leaseSeconds);
      const [text] = answer.texts([shown.message]);
      return jsonTextResponse(200, text, { ...headers, [LEASE_HEADER]: shown.lease });
    });
  });
}

const ASK_ALONE = "Send an ask on a connection of its own, kept open, to wait for its reply";

/**
 * Publishes a question and answers with the reply to it, or 504 when none came within `timeout` seconds; 401 at
 * once when the caller's token is revoked meanwhile (the reply then lands in the asker's inbox), 410 when the operator
 * removes the asker.
 */
export async function askRoute(broker: Broker, auth: Authenticator, request: IncomingRequest, caller: Caller, maxBodyBytes: number): Promise<OutgoingResponse> {
  const from = parseAgentName(request.url.searchParams.get("from"), "from");
  authorize(caller, from, "ask as");
  const to = parseAgentName(request.url.searchParams.get("to"), "to");
  const timeoutMs = parseTimeout(request.url.searchParams.get("timeout"));
  // Refused, not ignored: an ask asked again under its key would send the question again all the same.
  if (request.header("idempotency-key") !== null) {
    throw new InteropError(
      "invalid_query",
      `An ask takes no Idempotency-Key: to ask so that a retry sends nothing twice, publish the question under the key ` +
        `(POST /broadcast?from=${from}&to=${to}&hold_reply=S), then wait for its reply (GET /wait?agent=${from}&reply_to=ID)`,
    );
  }
  const payload = parsePayload(await request.text(maxBodyBytes), request.header("content-type"));
  // The asker reads its own inbox for the reply: one that had it here does not create it again once removed.
  return await readingAsHolder(broker, request, from, false, async () => {
    const settled = settling(request.clientGone());
    const deadline = performance.now() + timeoutMs;
    let question: Envelope | undefined;
    const reply = await untilEnded(broker, auth, caller, request, from, () => `a reply to message ${question?.id} will be in ${from}'s inbox`, (signal) =>
      // The question goes with its recipient's inbox: the ask ends once that removal commits, not at its timeout.
      whileRecipientKept(broker, to, () => question?.id, signal, async (toRemoval) => {
        const both = AbortSignal.any([signal, toRemoval]);
        if (question !== undefined) {
          const left = msUntil(deadline);
          return left <= 0 ? undefined : await broker.waitForReply(from, question.id, left, both);
        }
        const asked = await broker.ask(from, to, payload, timeoutMs, both, settled);
        question = asked.question;
        return asked.reply;
      })
    ).catch((error) => {
      // The question went: said, so that its client does not ask again (its reply has no inbox to go to).
      if (question === undefined || !(error instanceof InteropError && error.code === "agent_removed")) throw error;
      throw new InteropError(
        "agent_removed",
        `${from} was removed by the operator while its ask waited: message ${question.id} went to ${to}, and a reply to it has no inbox to go to`,
        { cause: error },
      );
    });
    // Asked in the wait's first try, which untilEnded returns after.
    const questionId = question!.id;
    // Ended by the connection or by the broker stopping, not the clock: "no reply within" the time asked for would be
    // false, and a client that half-closed, or pipelined past what is read, may still read this answer.
    const gone = request.clientGone();
    if (reply === undefined && (gone.aborted || broker.stopping.aborted)) {
      const [why, advice] = !gone.aborted
        ? ["the broker is stopping", `Once the broker is back, wait for it there (GET /wait?agent=${from}&reply_to=${questionId}), not by asking again: that sends the question again`]
        : gone.reason === READING_PAUSED
        ? ["this connection pipelined further requests while the ask waited (a connection not read cannot show its client leaving)", ASK_ALONE]
        : ["the client closed its side of the connection (a half-close reads as leaving)", ASK_ALONE];
      throw new InteropError(
        "ask_interrupted",
        `Ended early: ${why}, so the wait for ${to}'s reply to message ${questionId} ended; the reply, when it ` +
          `comes, will be in ${from}'s inbox. ${advice}`,
      );
    }
    if (reply === undefined) {
      await refuseGoneQuestion(broker, from, to, questionId, timeoutMs);
      throw new InteropError(
        "reply_timeout",
        `No reply from ${to} to message ${questionId} within ${timeoutMs / 1000} s; a later reply will be in ${from}'s inbox`,
      );
    }
    return jsonResponse(200, { question: questionId, reply: toWire(reply) });
  });
}

/**
 * Runs an ask's `wait` with a signal that aborts once the operator starts removing `to`, the question's recipient;
 * once that removal committed, rejects with 410 `question_gone` (the question went with the inbox, so no reply can
 * come), naming the question `questionId()` if it was asked. A removal refused or failed runs `wait` again, unless
 * the ask's own `signal` ended it.
 */
async function whileRecipientKept<T>(
  broker: Broker,
  to: AgentName,
  questionId: () => number | undefined,
  signal: AbortSignal,
  wait: (toRemoval: AbortSignal) => Promise<T | undefined>,
): Promise<T | undefined> {
  try {
    return await waitThroughRemoval(broker, to, wait, () => signal.aborted);
  } catch (error) {
    if (!(error instanceof InteropError && error.code === "agent_removed")) throw error;
    const id = questionId();
    throw new InteropError(
      "question_gone",
      `${to} was removed by the operator while the ask waited: ${id === undefined ? "the question" : `message ${id}`} went with its inbox, and no reply will come`,
      { cause: error },
    );
  }
}

/**
 * At an ask's timeout, refuses with 410 `question_gone` when no later reply can come, rather than promise one: the
 * question went with its recipient's inbox (the operator removed `to`; or retention removed it), or became a dead
 * letter. A store that cannot say (PostgreSQL away) leaves the timeout as it is.
 */
async function refuseGoneQuestion(broker: Broker, from: AgentName, to: AgentName, questionId: number, timeoutMs: number): Promise<void> {
  try {
    await broker.refuseUnanswerable(from, questionId);
  } catch (error) {
    if (!(error instanceof InteropError)) throw error;
    if (error.code === "question_gone") throw error;
    if (error.code !== "unknown_message") return;
    throw new InteropError(
      "question_gone",
      `No reply from ${to} to message ${questionId} within ${timeoutMs / 1000} s, and none will come: the message is gone ` +
        `(the operator removed ${to}, its inbox with it, or retention removed it)`,
      { cause: error },
    );
  }
}

/**
 * A read by a client that had the agent's inbox on this store (`Interop-Had-Inbox: STORE`, the `Interop-Store` of an
 * earlier answer) is refused with 410 `agent_removed` when the operator removed the agent since: reading would
 * create the inbox again (a reader announces itself); so is one that the removal overtakes further in, rather than
 * create it then (see `HolderReads`). As for a resumed /subscribe. Else runs `read`, the read. `hadInboxHere`: the
 * request itself shows it had the inbox on this store.
 */
export async function readingAsHolder<T>(
  broker: Broker,
  request: IncomingRequest,
  agent: AgentName,
  hadInboxHere: boolean,
  read: () => Promise<T>,
): Promise<T> {
  const endRead = await broker.readAsHolder(agent, hadInboxHere ? broker.storeId : request.header("interop-had-inbox") || undefined);
  try {
    return await read();
  } finally {
    endRead();
  }
}

/**
 * Runs a wait for `agent`'s messages or replies (`wait`, which answers undefined when nothing came) with a signal that
 * aborts when its client leaves, once the caller's token is revoked (401: `consequence` says what became of what it
 * waited for) or once the operator removes `agent` (as the token's and the agent's streams end; see
 * `waitThroughRemoval`): either way the waiter takes nothing more.
 */
async function untilEnded<T>(
  broker: Broker,
  auth: Authenticator,
  caller: Caller,
  request: IncomingRequest,
  agent: AgentName,
  consequence: string | (() => string),
  wait: (signal: AbortSignal, resumed: boolean) => Promise<T | undefined> | undefined,
): Promise<T | undefined> {
  const revocation = new AbortController();
  const unwatchToken = auth.watchRevocation(caller, () => revocation.abort());
  try {
    const found = await waitThroughRemoval(
      broker,
      agent,
      (removal, resumed) => wait(AbortSignal.any([request.clientGone(), revocation.signal, removal]), resumed),
      () => revocation.signal.aborted || request.clientGone().aborted,
    );
    if (found === undefined && revocation.signal.aborted) throw tokenRevoked(caller, typeof consequence === "string" ? consequence : consequence());
    return found;
  } finally {
    unwatchToken();
  }
}

function tokenRevoked(caller: Caller, consequence: string): InteropError {
  const what = caller === "anyone" ? "Tokens turned on while waiting" : "Token revoked while waiting";
  return new InteropError("unauthorized", `${what}: ${consequence}; create a token with 'interop token create'`);
}

/** Ends `agent`'s lease `lease` if `caller`'s token is revoked within the `seconds` it was granted (or renewed) for. */
function watchLease(revocations: GrantRevocations, caller: Caller, broker: Broker, agent: AgentName, lease: string, seconds: number): void {
  revocations.watch(caller, lease, seconds * 1000, () => broker.leases.end(agent, lease));
}
