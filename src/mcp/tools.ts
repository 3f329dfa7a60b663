/** interop's MCP tools: what an agent can do with its inbox, described for the model that calls them. */
// @ts-types: see src/cli/mcp.ts.
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/server/mcp.d.ts"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/types.d.ts"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { BrokerClient } from "../client/broker_client.ts";
import type { Logger } from "../cli/logger.ts";
import { InteropError, isStorageUnavailable } from "../errors.ts";
import { type AgentName, MAX_IDEMPOTENCY_KEY_LENGTH, parseAgentName, type Payload, SENDABLE_KEY, type WireMessage } from "../message.ts";
import { sleep } from "../sleep.ts";
import { AnswerTakes } from "./answer_takes.ts";
import { type RequestId, TakenMessages } from "./taken_messages.ts";

const MAX_WAIT_SECONDS = 600;
/**
 * Under the 60 s after which common MCP clients give up on a tool call (OpenClaw's among them): a call the client
 * abandoned is cancelled, and what it was waiting for stays in the inbox.
 */
const DEFAULT_WAIT_SECONDS = 45;
const CLIENT_LIMIT_ADVICE = "MCP clients give up on a call after their own timeout (often 60 s): keep timeout_seconds below it.";

/** A tool answer: JSON the model can read, as text. */
function answer(value: unknown) {
  return { content: [{ type: "text" as const, text: typeof value === "string" ? value : JSON.stringify(value, null, 2) }] };
}

function payloadOf(text: string | undefined, json: Record<string, unknown> | undefined): Payload {
  if ((text === undefined) === (json === undefined)) throw new Error("Give exactly one of text or json");
  return json ?? { text: text! };
}

/** The longest single long poll of a wait call: how long a cancelled wait may still run, and take a message. */
const WAIT_SLICE_SECONDS = 5;

/**
 * How long the broker holds the inbox for what a wait or an inbox call was shown, until the call takes it (a round
 * trip): what the agent's other readers may wait at most if this process dies in between.
 */
const SHOWN_LEASE_SECONDS = 30;

/**
 * How long the broker holds an ask's reply from the agent's other readers from the question's commit, until the
 * ask's first wait for it holds it (a round trip later): what they may wait at most if this process dies in between.
 */
const REPLY_HOLD_SECONDS = 30;

/**
 * What `poll` finds within `timeoutSeconds` in long polls of WAIT_SLICE_SECONDS at most, or null; after `cancel`
 * aborts, null once the long poll in flight ends. A poll is never hung up: the broker may have answered it in the
 * moment of the cancel, and a hang-up would drop that answer unread. A poll the broker answered 503
 * `storage_unavailable` (its database away) took nothing: the call polls again when Retry-After says, within its
 * timeout, rather than fail (a failed ask, its question stored, would be asked again by the model).
 */
async function longPollsUntilCancelled<T>(timeoutSeconds: number, cancel: AbortSignal, poll: (seconds: number) => Promise<T | null>) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  while (!cancel.aborted) {
    const left = (deadline - Date.now()) / 1000;
    if (left <= 0) break;
    try {
      const found = await poll(Math.min(left, WAIT_SLICE_SECONDS));
      if (found !== null) return found;
    } catch (error) {
      await afterOutage(error, left * 1000, cancel);
    }
  }
  return null;
}

/** What a call shows: messages, and the lease they were shown under (none: a broker older than leased reads took them). */
type Shown = { messages: WireMessage[]; lease?: string };

/**
 * The agent's next message within `timeoutSeconds`, shown under a lease on the inbox, or null. The long polls take
 * nothing: the call takes what it shows once its answer was written (AnswerTakes), and a message that a cancel
 * overtook on its way is not taken (the take of nothing ends the lease): it stays at the head of the inbox, in
 * order, for the next call or the agent's next session, where taken it would have waited for a next call of this
 * session, and been parked as a dead letter at its end.
 */
function nextMessageUntilCancelled(client: BrokerClient, agent: AgentName, timeoutSeconds: number, cancel: AbortSignal) {
  return longPollsUntilCancelled(timeoutSeconds, cancel, async (seconds): Promise<Shown | null> => {
    const shown = await unlessRemoved(agent, client.waitLeased(agent, seconds, SHOWN_LEASE_SECONDS));
    return shown === null ? null : { messages: [shown.message], lease: shown.lease };
  });
}

/**
 * The reply to the agent's message `question` within `timeoutSeconds`, or null, read as wait reads: shown under a
 * lease on the inbox, to be taken alone (out of order) once the call's answer was written. One that a cancel
 * overtook on its way is not taken (the take of nothing ends the lease): it stays in the inbox as an ordinary
 * message, for the next inbox or wait call or the agent's next session. A long poll that found nothing holds the
 * reply from the agent's other readers a moment more (the broker's REPOLL_GRACE_MS), for the next.
 */
function replyUntilCancelled(client: BrokerClient, agent: AgentName, question: number, timeoutSeconds: number, cancel: AbortSignal) {
  return longPollsUntilCancelled(timeoutSeconds, cancel, async (seconds): Promise<Shown | null> => {
    const shown = await unlessRemoved(agent, client.waitLeasedReply(agent, seconds, question, SHOWN_LEASE_SECONDS).catch((error) => {
      // A broker older than leased reply waits refuses the lease on a reply: its wait takes the reply, as before.
      if (error instanceof InteropError && error.code === "invalid_query") return client.wait(agent, seconds, question).then(asShown);
      throw error;
    }));
    return shown === null ? null : { messages: [shown.message], lease: shown.lease };
  });
}

/** A message a taking wait returned, as a leased wait would have shown it: taken already, under no lease. */
function asShown(message: WireMessage | null): { message: WireMessage; lease?: string } | null {
  return message === null ? null : { message };
}

/**
 * Up to `limit` of the agent's messages, read as wait reads them: shown under a lease on the inbox, to be taken
 * once the call's answer was written. What a cancel overtook while the read was at the broker stays at the head of
 * the inbox, where taken it would have been parked as a dead letter if the session ended before another call.
 */
async function inboxShown(client: BrokerClient, agent: AgentName, limit: number): Promise<Shown> {
  const { messages, lease } = await unlessRemoved(agent, client.peek(agent, limit, { seconds: SHOWN_LEASE_SECONDS }));
  if (lease !== undefined) return { messages, lease };
  // A broker older than leased peeks holds nothing for this call, and one older still took them with the peek:
  // taken now whatever the cancel, and held if it came, as before.
  if (messages.length > 0) await unlessRemoved(agent, client.poll(agent, messages.length, messages[messages.length - 1].interop.id));
  return { messages };
}

/**
 * Takes what a call showed under `lease` (up to the last of `shown`) once its answer was `written`, or nothing
 * (which ends the lease) once it never will be; `one` takes that message alone, out of order (an ask's reply).
 * It may take less than `shown`: a stream heeds no lease, and a lease lost (expired, or forgotten by a broker of its
 * own that restarted) lets another reader in, which may show those again. A take that fails (the broker
 * unreachable, another reader's lease since, the agent removed) leaves them in the inbox, shown again later: at
 * least once, as the agent may have read them; a lease still held expires by itself.
 */
async function takeShown(client: BrokerClient, agent: AgentName, shown: WireMessage[], lease: string, written: boolean, one?: number) {
  // Asked again through a 503 (PostgreSQL away a moment) while the lease lasts: given up at once, what the model has
  // read was shown to it again once the outage ended.
  const until = Date.now() + SHOWN_LEASE_SECONDS * 1000;
  try {
    if (!written || shown.length === 0) await throughOutage(() => client.poll(agent, 1, 0, lease), until);
    else if (one !== undefined) await throughOutage(() => client.takeOne(agent, one, lease), until);
    else await throughOutage(() => client.poll(agent, shown.length, shown[shown.length - 1].interop.id, lease), until);
  } catch {
    // Shown again later (above).
  }
}

/**
 * A read of the agent's inbox, said plainly when the broker refused it because the operator removed the agent
 * (`agent_removed`: this session read the inbox on that store, and reading on would create it again).
 */
async function unlessRemoved<T>(agent: AgentName, read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (error) {
    if (!(error instanceof InteropError && error.code === "agent_removed")) throw error;
    throw new InteropError(
      "agent_removed",
      `${agent} was removed by the operator: this session no longer reads its inbox (reading would create it again); ` +
        `'interop agent add ${agent}' to go on`,
      { cause: error },
    );
  }
}

/** Why a message taken for a cancelled call and never returned is parked when the session ends. */
const HELD_AT_CLOSE_REASON = "taken for an MCP call its client cancelled; the session ended before another inbox or " +
  "wait call could return it";

/**
 * How long the end of a session waits for calls still running. Each ends sooner by itself: the session's close
 * ends a wait or an ask after its current long poll (at most WAIT_SLICE_SECONDS), and a poll gives up after the
 * client's request timeout (10 s a broker).
 */
const SESSION_END_GRACE_MS = 30_000;

/** The tools registered for one session, and the two things the session must tell them. */
export interface SessionTools {
  /**
   * Sees every message from the client before the server does (set it as the transport's `onmessage` before
   * `server.connect`, which calls it first): a cancel for a call already answered never reaches the SDK's handlers.
   */
  observe(message: JSONRPCMessage): void;
  /**
   * Call once each message to the client was `written` to stdout's pipe (or its write failed): what a call's answer
   * shows under a lease is taken only then, so a kill before it leaves the messages in the inbox.
   */
  sent(message: JSONRPCMessage, written: boolean): void;
  /**
   * Call when the session ends (after the server's close, which cancels every running call): parks what was taken
   * for a cancelled call and never returned, and what each call still running takes as it ends, so it shows in
   * status instead of vanishing with the process (OpenClaw cancels a call when its turn is aborted or times out, and
   * later stops the server). It logs each message it could not park and resolves false when any (or a call that
   * never ended) may be lost.
   */
  endSession(log: Logger): Promise<boolean>;
}

/** Registers send, inbox, wait, ask and agents on `server`, acting as `agent`. */
export function registerTools(server: McpServer, client: BrokerClient, agent: AgentName): SessionTools {
  /** Messages taken for calls whose answer the client never read: the next inbox or wait call returns them first. */
  const taken = new TakenMessages();
  /** The calls that may take messages, still running: a poll in flight at the session's end answers after it. */
  const running = new Set<Promise<unknown>>();
  const tracked = <T>(call: Promise<T>): Promise<T> => {
    running.add(call);
    const settled = () => running.delete(call);
    call.then(settled, settled);
    return call;
  };
  const takes = new AnswerTakes();
  /**
   * Answers call `requestId` with `earlier` (held, taken already) and what it was `shown`: what was shown under a
   * lease is taken once the answer was written (AnswerTakes; `one`: that message alone). Remembered as answered as it
   * is written, before the take: a cancel that crossed the answer on the wire (its client drops it) is read after
   * that, and holds them for the next call, as every taken message is (TakenMessages).
   */
  const answerShown = (requestId: RequestId, signal: AbortSignal, earlier: WireMessage[], shown: Shown | null, one?: number) => {
    const messages = [...earlier, ...shown?.messages ?? []];
    const lease = shown?.lease;
    if (lease === undefined) return taken.answering(requestId, signal, messages);
    tracked(takes.after(requestId, signal, async (written) => {
      // Not written: the client never got them, and what was held already is held again.
      taken.answering(requestId, written ? signal : AbortSignal.abort(), written ? messages : earlier);
      await takeShown(client, agent, shown!.messages, lease, written, one);
    }));
    return messages;
  };

  const message = {
    text: z.string().min(1).optional().describe("The message as plain text."),
    json: z.record(z.string(), z.unknown()).optional().describe(
      "The message as a JSON object, when the receiver expects structured fields. Give text or json, not both.",
    ),
  };

  server.registerTool("send", {
    title: "Send a message",
    description: `Send a message from ${agent} to another agent's inbox. It is stored before this returns and delivered ` +
      "exactly once, even if the other agent is offline right now. To answer a message you received, pass its id as " +
      "reply_to (the reply then goes back to its sender unless you name `to`; to follow up a message you sent, its " +
      "recipient). Returns the new message ids and their recipients; a broadcast names in `refused` the agents it left " +
      "out (their inbox was full).",
    inputSchema: {
      to: z.string().optional().describe("The receiving agent's name. Omit only with reply_to, or to broadcast to every other agent."),
      ...message,
      reply_to: z.number().int().positive().optional().describe("The id of the message this one answers."),
      idempotency_key: z.string().regex(SENDABLE_KEY, `1-${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`).optional().describe(
        "Only to send again a message whose send failed saying it may have been stored: the key that error named. " +
          "The broker then stores it once, however many times it is sent with that key.",
      ),
    },
  }, async ({ to, text, json, reply_to, idempotency_key }) => {
    const recipient = to === undefined ? undefined : parseAgentName(to, "to");
    const payload = payloadOf(text, json);
    // Every send is keyed, so that one whose answer was lost can be sent again without being stored twice.
    const key = idempotency_key ?? crypto.randomUUID();
    const reply = await client.send(agent, recipient, payload, { replyTo: reply_to, key }).catch((error) => {
      if (!(error instanceof InteropError) || error.code !== "in_doubt") throw error;
      throw new InteropError(
        "in_doubt",
        `${error.message}. To store it once, call send again with the same arguments and idempotency_key "${key}"`,
        { cause: error },
      );
    });
    // Who a broadcast left out (full inboxes) is part of the answer: the agent must not take it for delivered to all.
    return answer({
      sent: true,
      ids: reply.ids,
      to: reply.to,
      ...(reply.refused === undefined ? {} : { refused: reply.refused }),
      ...(reply.refusals_unknown ? { refusals_unknown: true } : {}),
    });
  });

  server.registerTool("inbox", {
    title: "Read my inbox",
    description: `Return the messages waiting for ${agent}, oldest first, and mark them read once this answer is ` +
      "delivered: one comes again only when this answer may not have reached you (the call was cancelled as it was " +
      "answered, or this tool server stopped in between). Each has the sender's fields plus interop.id, interop.from " +
      "and interop.timestamp. Returns [] when nothing is waiting; big messages come a few a call (the broker's answer " +
      "holds 16 Mi characters), so call again until it returns []. To wait for the next message instead of checking " +
      "again, use wait.",
    inputSchema: { limit: z.number().int().min(1).max(1000).optional().describe("At most this many messages (default 100).") },
  }, ({ limit }, { signal, requestId }) =>
    tracked((async () => {
      const wanted = limit ?? 100;
      await takes.taken();
      const earlier = taken.takeHeld(wanted);
      // A call cancelled before it reached the broker reads nothing; one cancelled while it read takes nothing.
      const shown = earlier.length < wanted && !signal.aborted ? await inboxShown(client, agent, wanted - earlier.length) : null;
      return answer(answerShown(requestId, signal, earlier, shown));
    })()));

  server.registerTool("wait", {
    title: "Wait for the next message",
    description: `Block until the next message for ${agent} arrives (or one already waiting), then return it and mark it ` +
      "read. Use this instead of polling when you expect an answer or have nothing else to do. Returns " +
      `'{"message": null} when nothing came within the timeout; call it again to keep waiting. ${CLIENT_LIMIT_ADVICE}`,
    inputSchema: {
      timeout_seconds: z.number().positive().max(MAX_WAIT_SECONDS).optional().describe(
        `How long to wait (default ${DEFAULT_WAIT_SECONDS}).`,
      ),
    },
  }, ({ timeout_seconds }, { signal, requestId }) =>
    tracked((async () => {
      await takes.taken();
      const earlier = taken.takeHeld(1);
      const shown = earlier.length > 0 ? null : await nextMessageUntilCancelled(client, agent, timeout_seconds ?? DEFAULT_WAIT_SECONDS, signal);
      return answer({ message: answerShown(requestId, signal, earlier, shown)[0] ?? null });
    })()));

  server.registerTool("ask", {
    title: "Ask and wait for the answer",
    description: `Send a question from ${agent} to another agent and wait for the reply to it (the other agent answers ` +
      "with send and reply_to). Returns the reply; fails when no reply came within the timeout (a later reply still " +
      `arrives in your inbox: read it with wait or inbox). ${CLIENT_LIMIT_ADVICE}`,
    inputSchema: {
      to: z.string().describe("The agent to ask."),
      ...message,
      timeout_seconds: z.number().int().min(1).max(MAX_WAIT_SECONDS).optional().describe(
        `How long to wait (default ${DEFAULT_WAIT_SECONDS}).`,
      ),
    },
  }, ({ to, text, json, timeout_seconds }, { signal, requestId }) =>
    tracked((async () => {
      const timeout = timeout_seconds ?? DEFAULT_WAIT_SECONDS;
      const recipient = parseAgentName(to, "to");
      // The question, then its reply in long polls that are never hung up, as wait's: a cancel that hung up one
      // /ask dropped a reply the broker handed over in that moment (OpenClaw cancels a call when its turn is
      // aborted). A reply shown to the poll in flight at the cancel is not taken: it stays in the inbox.
      // Its reply is held from the agent's other readers (its `interop listen` stream) from the question's commit:
      // one sent at once would otherwise reach them before the first wait for it.
      const payload = payloadOf(text, json);
      const { id: question } = await client.send(agent, recipient, payload, { holdReplySeconds: REPLY_HOLD_SECONDS }).catch((error) => {
        // A broker older than held replies refuses hold_reply, storing nothing: the question goes as before.
        if (error instanceof InteropError && error.code === "invalid_query") return client.send(agent, recipient, payload);
        throw error;
      });
      const shown = await replyUntilCancelled(client, agent, question, timeout, signal);
      if (shown === null) {
        throw new Error(`No reply from ${recipient} to message ${question} within ${timeout} s; a later reply will be in ${agent}'s inbox`);
      }
      const [reply] = answerShown(requestId, signal, [], shown, shown.messages[0].interop.id);
      return answer({ question, reply });
    })()));

  server.registerTool("agents", {
    title: "List agents",
    description: "List the agents the broker knows: whether each is online (listening, or active in the last minute), " +
      "how many messages wait for it, and when it was last seen.",
    inputSchema: {},
  }, async () => answer((await client.status()).agents));

  const observe = (message: JSONRPCMessage) => {
    if (!("method" in message)) return;
    // A client may use an id again once its call was answered: a cancel with it is for the new call.
    if ("id" in message) taken.forget(message.id);
    else if (message.method === "notifications/cancelled") {
      const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") taken.cancelled(requestId);
    }
  };

  const endSession = async (log: Logger) => {
    const until = Date.now() + SESSION_END_GRACE_MS;
    // Every message gets its try: one the broker refuses (gone meanwhile, or a blip) must not strand the rest.
    let allParked = true;
    const parkHeld = async () => {
      for (const message of taken.drain()) {
        try {
          // Asked again while the broker answers 503 (PostgreSQL away: nothing parked): a park given up on is the
          // message lost, where an outage of a few seconds used to lose it.
          await throughOutage(() => client.parkDeadLetter(agent, message.interop.id, HELD_AT_CLOSE_REASON), until);
        } catch (error) {
          allParked = false;
          log.error(`could not park message ${message.interop.id} (taken for a cancelled call, never returned): ${(error as Error).message}`, {
            id: message.interop.id,
          });
        }
      }
    };
    // What is held is parked now, and what a call still running takes as soon as it ends, not after the last one:
    // OpenClaw stops its MCP server 2 s after closing stdin (SIGTERM, then SIGKILL 2 s later), sooner than a long
    // poll of a cancelled wait in flight may end, and a kill before the parking loses what was held.
    await parkHeld();
    const stillRunning = await settledWithin(running, SESSION_END_GRACE_MS, parkHeld);
    // A call that ended while the first parking was at the broker held what it took after that parking's drain,
    // and had left `running` before settledWithin looked: parked now, or it would exit with the process.
    await parkHeld();
    if (stillRunning > 0) {
      log.error(`${stillRunning} tool calls still running after ${SESSION_END_GRACE_MS / 1000} s: what they take is neither returned nor parked`);
    }
    return allParked && stillRunning === 0;
  };
  const sent = (message: JSONRPCMessage, written: boolean) => {
    if (("result" in message || "error" in message) && message.id !== undefined) takes.settle(message.id, written);
  };
  return { observe, sent, endSession };
}

/** Runs `request` again while the broker answers 503 `storage_unavailable` (nothing done), until `until`. */
async function throughOutage(request: () => Promise<unknown>, until: number): Promise<void> {
  for (;;) {
    try {
      await request();
      return;
    } catch (error) {
      await afterOutage(error, until - Date.now(), NEVER_ABORTED);
    }
  }
}

/**
 * After a 503 `storage_unavailable` (the broker's database away: nothing was done), waits what Retry-After says,
 * at most `leftMs` (or until `signal` aborts); any other error, or one with no time left, is thrown again.
 */
async function afterOutage(error: unknown, leftMs: number, signal: AbortSignal): Promise<void> {
  if (!isStorageUnavailable(error) || leftMs <= 0) throw error;
  await sleep(Math.min(((error as InteropError).retryAfter ?? 1) * 1000, leftMs), signal);
}

/** The signal of a wait nothing cuts short. */
const NEVER_ABORTED = new AbortController().signal;

/** Waits for `calls` to settle, at most `ms`, running `afterEach` as each settles; resolves with how many had not. */
async function settledWithin(calls: Set<Promise<unknown>>, ms: number, afterEach: () => Promise<void>): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  const each = [...calls].map((call) => call.then(afterEach, afterEach));
  await Promise.race([Promise.all(each), deadline]);
  clearTimeout(timer);
  return calls.size;
}
