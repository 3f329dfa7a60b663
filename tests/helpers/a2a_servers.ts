/**
 * Agents' own A2A servers for the outbound listener's tests: one built on the official SDK's request handler (as a
 * strict v1.0 server), and one shaped as OpenClaw 2026.9.6's channel answers (only SendMessage and GetTask, tasks in
 * memory, a repeated messageId opening a task that never ends). Both real node:http servers on free ports.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type AgentCard, TaskState } from "@a2a-js/sdk";
import {
  AgentEvent,
  type AgentExecutor,
  DefaultRequestHandler,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  ServerCallContext,
  validateVersion,
} from "@a2a-js/sdk/server";
import { LegacyJsonRpcTransportHandler } from "@a2a-js/sdk/compat/v0_3/server";

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => resolve(body)).on(
      "error",
      reject,
    );
  });
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
}

/** A node:http server that can go down and come back on the same port. */
class Restartable {
  port = 0;
  #server: Server | undefined;
  #handle: (request: IncomingMessage, response: ServerResponse) => unknown;

  constructor(handle: (request: IncomingMessage, response: ServerResponse) => unknown) {
    this.#handle = handle;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((request, response) => {
      Promise.resolve(this.#handle(request, response)).catch((error) => {
        // A client that hung up mid-request (a listener SIGKILLed) fails the body's read ("aborted"): that request is
        // gone, as it is at a real agent. Deno's node:http reports it where Node's mostly does not.
        if ((error as NodeJS.ErrnoException).code === "ECONNRESET") return;
        throw error;
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Takes a port and gives it back, so a server can be started there later ("down while messages arrive"). */
export async function reservePort(): Promise<number> {
  const holder = new Restartable(() => {});
  await holder.start();
  await holder.stop();
  return holder.port;
}

function textOfParts(parts: unknown): string {
  if (!Array.isArray(parts)) return "";
  return parts.map((
    part,
  ) => (typeof part?.text === "string" ? part.text : part?.content?.$case === "text" ? part.content.value : "")).join(
    "\n",
  );
}

/**
 * The SDK's `DefaultRequestHandler` + `JsonRpcTransportHandler` behind node:http, as an agent's A2A server would
 * run it: v1.0 only (a request without `A2A-Version` is 0.3 and refused with -32009), Bearer `token`. Each
 * message becomes a task that works for `workMs`, then completes with the artifact "echo: TEXT".
 */
export class SdkAgentServer extends Restartable {
  /** How many times each messageId reached the agent. */
  readonly seen = new Map<string, number>();
  /** The message ids in the order they came. */
  readonly order: string[] = [];
  /** The data parts of each message, by messageId (the interop payload rides in one). */
  readonly data = new Map<string, unknown[]>();
  /** What the requests carried, per messageId: the A2A-Version header and the JSON-RPC method. */
  readonly requests: Array<{ method: string; version: string | undefined; body: Record<string, unknown> }> = [];

  /**
   * `protocolVersion` "0.3": a v0.3-only server, which refuses the v1.0 header with -32009 (the SDK's legacy handler).
   * `streaming`: the card says so, and `SubscribeToTask` answers an SSE stream of the task's events.
   */
  constructor(options: { token: string; workMs?: number; protocolVersion?: "1.0" | "0.3"; streaming?: boolean }) {
    const card = (url: string): AgentCard => ({
      name: "sdk-agent",
      description: "An A2A server on the official SDK, standing in for an agent's own",
      version: "1.0.0",
      supportedInterfaces: [{
        url,
        protocolBinding: "JSONRPC",
        protocolVersion: options.protocolVersion ?? "1.0",
        tenant: "",
      }],
      capabilities: { streaming: options.streaming ?? false, pushNotifications: false, extensions: [] },
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills: [],
      securitySchemes: {},
      securityRequirements: [],
      signatures: [],
    } as unknown as AgentCard);
    const executor: AgentExecutor = {
      execute: async (context, bus) => {
        const message = context.userMessage;
        this.seen.set(message.messageId, (this.seen.get(message.messageId) ?? 0) + 1);
        this.order.push(message.messageId);
        this.data.set(
          message.messageId,
          message.parts.flatMap((part) => (part.content?.$case === "data" ? [part.content.value] : [])),
        );
        const base = { taskId: context.taskId, contextId: context.contextId, metadata: undefined };
        const now = () => new Date().toISOString();
        bus.publish(AgentEvent.task({
          id: context.taskId,
          contextId: context.contextId,
          status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: now() },
          artifacts: [],
          history: [message],
          metadata: undefined,
        } as never));
        await new Promise((resolve) => setTimeout(resolve, options.workMs ?? 50));
        const text = textOfParts(message.parts);
        bus.publish(AgentEvent.artifactUpdate({
          ...base,
          artifact: {
            artifactId: randomUUID(),
            name: "answer",
            description: "",
            parts: [{
              content: { $case: "text", value: `echo: ${text}` },
              metadata: undefined,
              filename: "",
              mediaType: "text/plain",
            }],
            metadata: undefined,
            extensions: [],
          },
          append: false,
          lastChunk: true,
        } as never));
        bus.publish(
          AgentEvent.statusUpdate(
            {
              ...base,
              status: { state: TaskState.TASK_STATE_COMPLETED, message: undefined, timestamp: now() },
            } as never,
          ),
        );
        bus.finished();
      },
      cancelTask: async () => {},
    };
    let handler: DefaultRequestHandler | undefined;
    super(async (request, response) => {
      const body = await readBody(request);
      if (request.headers.authorization !== `Bearer ${options.token}`) {
        return sendJson(response, 401, { error: "Unauthorized" });
      }
      const agentCard = card(this.url + "/");
      handler ??= new DefaultRequestHandler(agentCard, new InMemoryTaskStore(), executor);
      const version = request.headers["a2a-version"] as string | undefined;
      const transport = (version ?? "0.3") === "0.3"
        ? new LegacyJsonRpcTransportHandler(handler)
        : new JsonRpcTransportHandler(handler);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(body);
      } catch {
        return sendJson(response, 200, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
      }
      this.requests.push({ method: String(parsed.method), version, body: parsed });
      const context = new ServerCallContext({ requestedVersion: version });
      try {
        validateVersion(context.requestedVersion, agentCard, "JSONRPC");
      } catch (error) {
        return sendJson(response, 200, {
          jsonrpc: "2.0",
          id: parsed.id ?? null,
          error: JsonRpcTransportHandler.mapToJSONRPCError(error),
        });
      }
      const answer = await transport.handle(parsed, context);
      if (!(Symbol.asyncIterator in answer)) return sendJson(response, 200, answer);
      // A stream: its first event (or its refusal, as a plain JSON-RPC error) decides the answer's form.
      const events = answer as AsyncGenerator<unknown>;
      let first: IteratorResult<unknown>;
      try {
        first = await events.next();
      } catch (error) {
        const mapped = JsonRpcTransportHandler.mapToJSONRPCError(error);
        return sendJson(response, 200, { jsonrpc: "2.0", id: parsed.id ?? null, error: mapped });
      }
      response.writeHead(200, { "content-type": "text/event-stream" });
      try {
        for (let next = first; !next.done; next = await events.next()) response.write(`data: ${JSON.stringify(next.value)}\n\n`);
      } catch (error) {
        const mapped = JsonRpcTransportHandler.mapToJSONRPCError(error);
        response.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: parsed.id ?? null, error: mapped })}\n\n`);
      }
      response.end();
    });
  }

  /** Times the agent got a messageId more than once. */
  repeats(): number {
    return [...this.seen.values()].filter((count) => count > 1).length;
  }
}

interface OpenclawTask {
  id: string;
  contextId: string;
  text: string;
  /** A task for a repeated messageId: its turn is skipped and it stays WORKING for good (as 2026.9.6 does). */
  stuck: boolean;
  polls: number;
}

/** Why OpenClaw 2026.9.6 failed the turn on an answer it had taken (its CLI was running alongside the gateway). */
export const OPENCLAW_TURN_FAILURE = "another OpenClaw process owns state-lifecycle";
/** How OpenClaw's channel refuses a text that starts with "/" (TASK_STATE_REJECTED). */
export const OPENCLAW_SLASH_REFUSAL =
  "A2A peers cannot execute slash commands. Send a task in plain text; only users can issue commands.";

/** The methods OpenClaw's channel names as known but unsupported (`-32004`), SubscribeToTask among them. */
const OPENCLAW_UNSUPPORTED = new Set([
  "CancelTask",
  "tasks/cancel",
  "ListTasks",
  "SendStreamingMessage",
  "SubscribeToTask",
  "CreateTaskPushNotificationConfig",
  "SetTaskPushNotificationConfig",
  "GetTaskPushNotificationConfig",
  "ListTaskPushNotificationConfig",
  "ListTaskPushNotificationConfigs",
  "DeleteTaskPushNotificationConfig",
  "GetExtendedAgentCard",
]);

/**
 * OpenClaw 2026.9.6's A2A channel as observed (see shared/notes/openclaw-a2a-facts.md): `POST /a2a/v1` only,
 * Bearer token, `SendMessage`/`message/send` and `GetTask`/`tasks/get`; `-32004` for the other operations it
 * knows (`SubscribeToTask` too: it does not stream), `-32601` for the rest; answers always v1.0 and WORKING; the
 * task completes with the answer as its artifact after `pollsToComplete` GetTasks; tasks in memory (`restart()`
 * forgets them: GetTask then `-32001`).
 */
export class OpenclawA2aServer extends Restartable {
  readonly tasks = new Map<string, OpenclawTask>();
  /** Every messageId the channel got, in order, repeats included. */
  readonly received: string[] = [];
  /** Answer the next N requests with `-32000 "Peer is rate limited"`. */
  rateLimited = 0;
  /** Answer the next N SendMessages with HTTP 503 "Plugin runtime is starting". */
  starting = 0;
  /** Never answer SendMessage (the request is taken, the answer lost). */
  hangSends = false;
  /**
   * Drop the next N requests unanswered, unread: the gateway restarting behind a TCP proxy (docker's), which takes
   * each connection and closes it while the gateway is away.
   */
  dropRequests = 0;
  /**
   * Answer the next N requests with HTTP 404, not JSON-RPC: the gateway draining after SIGTERM, whose HTTP server
   * answers so on /a2a/v1 for about a second once the channel's route is gone (measured on OpenClaw 2026.9.6).
   */
  draining = 0;
  /** Answer a GetTask for a task it does not have with this HTTP status (a server that fails on them) instead of -32001. */
  unknownTaskStatus: number | undefined;
  pollsToComplete = 2;
  /** Speak v0.3 only, as an older server: the v1.0 names are unknown (`-32601`). */
  legacyOnly = false;
  /** Every JSON-RPC method called, in order. */
  readonly methods: string[] = [];
  #seenMessageIds = new Set<string>();

  constructor(options: { token: string }) {
    super(async (request, response) => {
      if (this.dropRequests > 0) {
        this.dropRequests--;
        return request.socket.destroy();
      }
      const body = await readBody(request);
      if (request.method !== "POST" || request.url !== "/a2a/v1" || this.draining > 0) {
        if (request.url === "/a2a/v1") this.draining--;
        return sendJson(response, 404, { error: "Not Found" });
      }
      if (request.headers.authorization !== `Bearer ${options.token}`) {
        return sendJson(response, 401, { error: "Unauthorized; pass the peer's token" });
      }
      let rpc: { id?: unknown; method?: unknown; params?: Record<string, unknown> };
      try {
        rpc = JSON.parse(body);
      } catch {
        return sendJson(response, 200, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
      }
      const answer = (result: unknown) => sendJson(response, 200, { jsonrpc: "2.0", id: rpc.id, result });
      const fail = (code: number, message: string) =>
        sendJson(response, 200, { jsonrpc: "2.0", id: rpc.id, error: { code, message } });
      this.methods.push(String(rpc.method));
      if (this.legacyOnly && typeof rpc.method === "string" && !rpc.method.includes("/")) {
        return fail(-32601, "Method not found");
      }
      if (this.rateLimited > 0) {
        this.rateLimited--;
        return fail(-32000, "Peer is rate limited");
      }
      switch (rpc.method) {
        case "SendMessage":
        case "message/send": {
          if (this.starting > 0) {
            this.starting--;
            return sendJson(response, 503, { error: "Plugin runtime is starting" });
          }
          const message = rpc.params?.message as
            | { messageId?: unknown; contextId?: unknown; parts?: unknown }
            | undefined;
          // A text with "[refuse]" stands for a message the channel refuses as invalid.
          if (
            typeof message?.messageId !== "string" || !Array.isArray(message.parts) ||
            textOfParts(message.parts).includes("[refuse]")
          ) {
            return fail(-32602, "Invalid params");
          }
          this.received.push(message.messageId);
          const task: OpenclawTask = {
            id: randomUUID(),
            contextId: typeof message.contextId === "string" ? message.contextId : `ctx-${randomUUID()}`,
            text: textOfParts(message.parts),
            stuck: this.#seenMessageIds.has(message.messageId),
            polls: 0,
          };
          this.#seenMessageIds.add(message.messageId);
          this.tasks.set(task.id, task);
          if (this.hangSends) return; // taken, never answered
          return answer({ task: this.#view(task) });
        }
        case "GetTask":
        case "tasks/get": {
          const task = this.tasks.get(String(rpc.params?.id));
          if (task === undefined && this.unknownTaskStatus !== undefined) {
            return sendJson(response, this.unknownTaskStatus, { error: "Internal Server Error" });
          }
          if (task === undefined) return fail(-32001, "Task not found");
          task.polls++;
          return answer(this.#view(task));
        }
        default:
          if (OPENCLAW_UNSUPPORTED.has(String(rpc.method))) {
            return fail(-32004, "Unsupported operation; supported methods are SendMessage and GetTask");
          }
          return fail(-32601, "Method not found");
      }
    });
  }

  /** The gateway restarting: every task is gone. */
  async restart(): Promise<void> {
    await this.stop();
    this.tasks.clear();
    await this.start();
  }

  #view(task: OpenclawTask): unknown {
    const done = !task.stuck && task.polls >= this.pollsToComplete;
    // A text with "[fail]" stands for a turn the gateway could not start (seen on 2026.9.6 while its CLI ran); one
    // starting with "/" is refused as a slash command, as the channel does.
    const ended = !done
      ? undefined
      : task.text.includes("[fail]")
      ? { state: "TASK_STATE_FAILED", text: OPENCLAW_TURN_FAILURE }
      : task.text.trimStart().startsWith("/")
      ? { state: "TASK_STATE_REJECTED", text: OPENCLAW_SLASH_REFUSAL }
      : undefined;
    if (ended !== undefined) {
      const message = { messageId: randomUUID(), role: "ROLE_AGENT", parts: [{ text: ended.text }] };
      return {
        id: task.id,
        contextId: task.contextId,
        status: { state: ended.state, timestamp: new Date().toISOString(), message },
        artifacts: [],
        history: [],
      };
    }
    return {
      id: task.id,
      contextId: task.contextId,
      status: { state: done ? "TASK_STATE_COMPLETED" : "TASK_STATE_WORKING", timestamp: new Date().toISOString() },
      artifacts: done ? [{ artifactId: randomUUID(), parts: [{ text: `openclaw says: ${task.text}` }] }] : [],
      history: [],
    };
  }
}

/**
 * Hermes's A2A platform (plugins/platforms/a2a/adapter.py) as its code answers: JSON-RPC on `POST /`, v1.0 and
 * slash names, `A2A-Version` empty or 1.0 (anything else `-32602`), rate limit as HTTP 429 with `-32051`, every
 * send answered at once with a WORKING task (it ignores `messageId`: a repeat is a second turn), and the agent's
 * reply as the task's status message, plus an artifact when COMPLETED; a reply starting `[INPUT_REQUIRED]` ends the
 * task TASK_STATE_INPUT_REQUIRED. `reply` gives the agent's answer to a text.
 */
export class HermesA2aServer extends Restartable {
  /** The texts of the turns the agent ran, repeats included. */
  readonly turns: string[] = [];
  /** Answer the next N requests with HTTP 429 / -32051. */
  rateLimited = 0;
  readonly #tasks = new Map<string, { id: string; contextId: string; state: string; reply: string }>();

  constructor(options: { token: string; reply: (text: string) => string }) {
    super(async (request, response) => {
      const body = await readBody(request);
      const rpc = JSON.parse(body) as { id?: unknown; method?: string; params?: Record<string, any> };
      const fail = (status: number, code: number, message: string) =>
        sendJson(response, status, { jsonrpc: "2.0", id: rpc.id ?? null, error: { code, message } });
      if (request.headers.authorization !== `Bearer ${options.token}`) return fail(401, -32050, "unauthorized");
      const version = String(request.headers["a2a-version"] ?? "").trim();
      if (version !== "" && version !== "1.0" && version !== "1.0.0") {
        return fail(200, -32602, `unsupported A2A-Version: ${version}`);
      }
      if (this.rateLimited > 0) {
        this.rateLimited--;
        return fail(429, -32051, "rate limit exceeded");
      }
      const result = (value: unknown) => sendJson(response, 200, { jsonrpc: "2.0", id: rpc.id, result: value });
      if (rpc.method === "SendMessage" || rpc.method === "message/send") {
        const text = textOfParts(rpc.params?.message?.parts);
        this.turns.push(text);
        const task = {
          id: `task-${randomUUID().slice(0, 16)}`,
          contextId: rpc.params?.message?.contextId ?? "ctx",
          state: "TASK_STATE_WORKING",
          reply: "",
        };
        this.#tasks.set(task.id, task);
        // The turn ends a moment later, as the live session answers.
        setTimeout(() => {
          const reply = options.reply(text);
          task.state = reply.startsWith("[INPUT_REQUIRED]") ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED";
          task.reply = reply.replace(/^\[INPUT_REQUIRED\]\s*/, "");
        }, 30);
        return result(rpc.method === "SendMessage" ? { task: this.#view(task) } : this.#view(task));
      }
      if (rpc.method === "GetTask" || rpc.method === "tasks/get") {
        const task = this.#tasks.get(String(rpc.params?.id));
        return task === undefined ? fail(200, -32001, "task not found") : result(this.#view(task));
      }
      return fail(200, -32601, `method not found: ${rpc.method}`);
    });
  }

  #view(task: { id: string; contextId: string; state: string; reply: string }): unknown {
    const status: Record<string, unknown> = { state: task.state, timestamp: new Date().toISOString() };
    if (task.reply === "") return { id: task.id, contextId: task.contextId, status };
    status.message = {
      role: "ROLE_AGENT",
      parts: [{ text: task.reply, mediaType: "text/plain" }],
      messageId: randomUUID(),
      contextId: task.contextId,
    };
    const artifacts = task.state === "TASK_STATE_COMPLETED"
      ? [{ artifactId: randomUUID(), parts: [{ text: task.reply, mediaType: "text/plain" }] }]
      : undefined;
    return { id: task.id, contextId: task.contextId, status, ...(artifacts ? { artifacts } : {}) };
  }
}
