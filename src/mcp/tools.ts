/** interop's MCP tools: what an agent can do with its inbox, described for the model that calls them. */
// @ts-types: see src/cli/mcp.ts.
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/server/mcp.d.ts"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/types.d.ts"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { BrokerClient } from "../client/broker_client.ts";
import type { Logger } from "../cli/logger.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, MAX_IDEMPOTENCY_KEY_LENGTH, parseAgentName, type Payload, SENDABLE_KEY, type WireMessage } from "../message.ts";
import { streamOpen } from "../status_report.ts";
import { AnswerTakes } from "./answer_takes.ts";
import { answerShownFor } from "./shown_answers.ts";
import { inboxShown, nextMessageUntilCancelled, replyUntilCancelled, unlessRemoved } from "./shown_reads.ts";
import { type HeldMessage, type KeptHeld, TakenMessages } from "./taken_messages.ts";
import { throughOutage } from "./through_outage.ts";

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

/**
 * How long the broker holds an ask's reply from the agent's other readers from the question's commit, until the
 * ask's first wait for it holds it (a round trip later): what they may wait at most if this process dies in between.
 */
const REPLY_HOLD_SECONDS = 30;

/**
 * Why a message taken for a cancelled call and never returned is parked when the session ends: the call was cancelled
 * before its answer was written, or after (`written`: the client may have read it, so sending it again may repeat it).
 */
function heldAtCloseReason(written: boolean): string {
  const cancelled = written
    ? "taken for an MCP call its client cancelled after the answer holding it was written (the agent may have read it)"
    : "taken for an MCP call its client cancelled";
  return `${cancelled}; the session ended before another inbox or wait call could return it`;
}

/**
 * How long the end of a session waits for calls still running. Each ends sooner by itself: the session's close
 * ends a wait or an ask after its current long poll (at most shown_reads.ts' WAIT_SLICE_SECONDS), and a poll gives up after the
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

/**
 * Registers send, inbox, wait, ask and agents on `server`, acting as `agent`. `kept`: where what the session holds is
 * kept as well (`HeldFile`), and what it held before, taken over from a session that died (`held`).
 */
export function registerTools(
  server: McpServer,
  client: BrokerClient,
  agent: AgentName,
  kept?: { file: KeptHeld; held: HeldMessage[] },
): SessionTools {
  /** Messages taken for calls whose answer the client never read: the next inbox or wait call returns them first. */
  const taken = new TakenMessages({ kept: kept?.file, held: kept?.held });
  /** The calls that may take messages, still running: a poll in flight at the session's end answers after it. */
  const running = new Set<Promise<unknown>>();
  const tracked = <T>(call: Promise<T>): Promise<T> => {
    running.add(call);
    const settled = () => running.delete(call);
    call.then(settled, settled);
    return call;
  };
  const takes = new AnswerTakes();
  const answerShown = answerShownFor(client, agent, taken, takes, tracked);

  /**
   * Whether inbox and wait may read the inbox: not while a stream hands the agent's messages on (`interop listen`
   * pushing them as turns: `interop integrate openclaw` sets up both), as a stream heeds no lease and what they show
   * it may hand on too (red team 57: OpenClaw's MCP server beside its listener). With messages held for this call
   * (`earlier`) it answers those; with none it refuses, saying why.
   */
  const mayReadInbox = async (earlier: WireMessage[]): Promise<boolean> => {
    // A broker that cannot say (an older one, its status refused) is read as before.
    const report = await client.status().catch(() => undefined);
    if (report === undefined || !streamOpen(report, agent)) return true;
    if (earlier.length > 0) return false;
    throw new InteropError(
      "stream_open",
      `${agent}'s messages are handed on by a stream (interop listen, or another reader of /subscribe): each reaches ` +
        "you that way, once; read here too, one could come twice. Use send and ask here (ask gets its reply).",
    );
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
      "answered, or this tool server stopped in between) or could not be marked read (the broker's disk full), marked " +
      "interop.redelivered when it may have: skip one whose " +
      "id you already handled. Each has the sender's fields plus interop.id, interop.from " +
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
      const reads = earlier.length < wanted && !signal.aborted && await mayReadInbox(earlier);
      // A read that fails answers what was held alone: failing the call dropped those, taken already (the read is
      // tried again by the next call).
      const shown = reads ? await inboxShown(client, agent, wanted - earlier.length).catch((error) => earlier.length > 0 ? null : Promise.reject(error)) : null;
      return answer(answerShown(requestId, signal, earlier, shown));
    })()));

  server.registerTool("wait", {
    title: "Wait for the next message",
    description: `Block until the next message for ${agent} arrives (or one already waiting), then return it and mark it ` +
      "read (one marked interop.redelivered may have reached you in an earlier answer, cancelled after it was written or " +
      "not marked read: skip it if you handled its id). Use this instead of polling when you expect an answer or have " +
      "nothing else to do. Returns " +
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
      const reads = earlier.length === 0 && await mayReadInbox(earlier);
      const shown = reads ? await nextMessageUntilCancelled(client, agent, timeout_seconds ?? DEFAULT_WAIT_SECONDS, signal) : null;
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
      const asked = client.send(agent, recipient, payload, { holdReplySeconds: REPLY_HOLD_SECONDS }).catch((error) => {
        // A broker older than held replies refuses hold_reply, storing nothing: the question goes as before.
        if (error instanceof InteropError && error.code === "invalid_query") return client.send(agent, recipient, payload);
        throw error;
      });
      // Refused, sending nothing, once the operator removed the agent: its reply would have no inbox to go to.
      const { id: question } = await unlessRemoved(agent, asked);
      const shown = await replyUntilCancelled(client, agent, question, timeout, signal).catch((error) => {
        // The question went: said, or the model asks again and the other agent gets it twice (the token revoked
        // meanwhile answered only "nothing was taken from the inbox").
        throw new Error(`Message ${question} was sent to ${recipient}, but waiting for its reply failed: ${(error as Error).message}`, { cause: error });
      });
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
  }, async () => {
    // After the takes of answers written: the agent's own pending count would otherwise still hold what it was just
    // shown (an ask's reply), and a wait or inbox for it would find nothing.
    await takes.taken();
    return answer((await client.status()).agents);
  });

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
    const until = performance.now() + SESSION_END_GRACE_MS;
    // Every message gets its try: one the broker refuses (gone meanwhile, or a blip) must not strand the rest.
    let allParked = true;
    const parkHeld = async () => {
      for (const { message, written } of taken.drain()) {
        try {
          // Asked again while the broker answers 503 (PostgreSQL away: nothing parked): a park given up on is the
          // message lost, where an outage of a few seconds used to lose it.
          await throughOutage(() => client.parkDeadLetter(agent, message.interop.id, heldAtCloseReason(written)), until);
          taken.parked(message.interop.id);
        } catch (error) {
          allParked = false;
          const next = kept === undefined ? "" : `; the next interop mcp session of ${agent} on this broker returns it`;
          log.error(
            `could not park message ${message.interop.id} (taken for a cancelled call, never returned): ${(error as Error).message}${next}`,
            { id: message.interop.id },
          );
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

/**
 * Waits for `calls` to settle, at most `ms`, running `afterEach` as each settles; resolves with how many had not. A
 * call that starts meanwhile is waited for too: a request read just before stdin's end starts its handler only after
 * the session's end has begun (8 of 8 such closes were reported as "still running", their peeks left in flight).
 */
async function settledWithin(calls: Set<Promise<unknown>>, ms: number, afterEach: () => Promise<void>): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, ms);
  });
  // Each round waits for the calls running as it starts; a handler already on its way has started by the next turn.
  while (!timedOut) {
    if (calls.size === 0) await new Promise((resolve) => setImmediate(resolve));
    if (calls.size === 0) break;
    await Promise.race([Promise.all([...calls].map((call) => call.then(afterEach, afterEach))), deadline]);
  }
  clearTimeout(timer);
  return calls.size;
}
