/**
 * A stand-in for OpenClaw's gateway hooks (src/gateway/server/hooks-request-handler.ts): a real node:http server
 * that answers /hooks/wake and /hooks/agent as the gateway does, so `listen --openclaw` can be tested without it.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** OpenClaw's default `hooks.maxBodyBytes`. */
export const OPENCLAW_HOOKS_MAX_BODY_BYTES = 256 * 1024;

export interface HookRun {
  runId: string;
  agentId: string;
  message: string;
  idempotencyKey: string | undefined;
}

export interface HookWake {
  text: string;
  mode: string;
  agentId: string | undefined;
}

export interface OpenclawGatewayOptions {
  token: string;
  /** The configured agents; with more than one, a wake must name its agent. */
  agents?: string[];
  maxBodyBytes?: number;
  /** How long each agent turn runs, one after another (the real gateway's turns run a model): 0 ends each at once. */
  turnMs?: number;
}

export class OpenclawGateway {
  /** Agent turns started, in order: a replay of an Idempotency-Key starts none. */
  runs: HookRun[] = [];
  /** Agent turns that ended, in order: a turn queued or running when the gateway stopped never ends. */
  ended: HookRun[] = [];
  /** Wake events queued, in order (the gateway de-duplicates none of them). */
  wakes: HookWake[] = [];
  /** Requests answered from the Idempotency-Key cache with an earlier runId. */
  replays = 0;
  /** Every status answered, in order. */
  answered: number[] = [];
  /** Answer the next N hook requests 409, as when a config reload races them. */
  conflicts = 0;
  /** Start the next N agent turns but never answer, so the sender times out and replays. */
  hangs = 0;
  port = 0;
  readonly #token: string;
  readonly #agents: string[];
  readonly #maxBodyBytes: number;
  readonly #turnMs: number;
  /** Kept in memory, as the gateway keeps it: a restart forgets it. */
  #replayCache = new Map<string, { runId: string; sessionKey: string; ended: Promise<void> }>();
  /** When the last turn queued ends: turns run one after another. */
  #queue: Promise<void> = Promise.resolve();
  /** Turns in the queue or running, which a stop drops (the gateway keeps them in memory). */
  #turnTimers = new Set<ReturnType<typeof setTimeout>>();
  #server: Server | undefined;

  constructor(options: OpenclawGatewayOptions) {
    this.#token = options.token;
    this.#agents = options.agents ?? ["main"];
    this.#maxBodyBytes = options.maxBodyBytes ?? OPENCLAW_HOOKS_MAX_BODY_BYTES;
    this.#turnMs = options.turnMs ?? 0;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts on a free port, or on the one it had (a restart), remembering no earlier turn or key. */
  async start(): Promise<void> {
    this.#replayCache = new Map();
    this.#queue = Promise.resolve();
    this.#server = createServer((req, res) => this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(this.port, "127.0.0.1", resolve));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  /** Stops as a killed gateway does: connections cut, and the turns queued or running dropped, never ended. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const timer of this.#turnTimers) clearTimeout(timer);
    this.#turnTimers.clear();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= this.#maxBodyBytes) chunks.push(chunk);
    });
    req.on("end", () => {
      if (req.method !== "POST") return this.#send(res, 405, { ok: false, error: "Method Not Allowed" });
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? req.headers["x-openclaw-token"];
      if (bearer !== this.#token) return this.#send(res, 401, { ok: false, error: "Unauthorized" });
      // The real gateway gives up on an oversized body as soon as Content-Length shows it, and may reset the
      // connection before its 413 leaves; this one reads the body first, so the 413 always arrives.
      if (size > this.#maxBodyBytes) return this.#send(res, 413, { ok: false, error: "payload too large" });
      let payload: Record<string, unknown>;
      try {
        payload = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (error) {
        return this.#send(res, 400, { ok: false, error: String(error) });
      }
      if (this.conflicts > 0) {
        this.conflicts--;
        return this.#send(res, 409, { ok: false, error: "hook configuration changed; retry request" });
      }
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      if (path === "/hooks/wake") return this.#wake(res, payload);
      if (path === "/hooks/agent") return this.#agent(req, res, payload);
      this.#send(res, 404, { ok: false, error: "Not Found" });
    });
  }

  #wake(res: ServerResponse, payload: Record<string, unknown>): void {
    const text = typeof payload.text === "string" ? payload.text.trim() : "";
    if (!text) return this.#send(res, 400, { ok: false, error: "text required" });
    const agentId = typeof payload.agentId === "string" ? payload.agentId : undefined;
    if (agentId === undefined && this.#agents.length > 1) {
      return this.#send(res, 400, { ok: false, error: "agentId is required when multiple agents are configured" });
    }
    const mode = payload.mode === "next-heartbeat" ? "next-heartbeat" : "now";
    this.wakes.push({ text, mode, agentId });
    this.#send(res, 200, { ok: true, mode });
  }

  #agent(req: IncomingMessage, res: ServerResponse, payload: Record<string, unknown>): void {
    const message = typeof payload.message === "string" ? payload.message.trim() : "";
    if (!message) return this.#send(res, 400, { ok: false, error: "message required" });
    // An unknown or missing agent id falls back to the default agent, as resolveHookTargetAgentId does.
    const requested = typeof payload.agentId === "string" ? payload.agentId : undefined;
    const agentId = requested !== undefined && this.#agents.includes(requested) ? requested : this.#agents[0];
    const idempotencyKey = req.headers["idempotency-key"] as string | undefined;
    // The replay cache is keyed by the key and what the request asks for, so a replay must repeat the request.
    const replayKey = idempotencyKey === undefined ? undefined : JSON.stringify([idempotencyKey, agentId, message]);
    // `waitForCompletion: true` answers once the turn ended (with its `completion`), not once it was taken.
    const answer = async ({ ended, ...run }: { runId: string; sessionKey: string; ended: Promise<void> }) => {
      if (payload.waitForCompletion === true) await ended;
      this.#send(res, 200, { ok: true, status: "accepted", ...run, ...(payload.waitForCompletion === true ? { completion: { status: "ok" } } : {}) });
    };
    const cached = replayKey === undefined ? undefined : this.#replayCache.get(replayKey);
    if (cached !== undefined) {
      this.replays++;
      return void answer(cached);
    }
    const started = { runId: randomUUID(), agentId, message, idempotencyKey };
    const run = { runId: started.runId, sessionKey: `agent:${agentId}:hook:${randomUUID()}`, ended: this.#turn(started) };
    if (replayKey !== undefined) this.#replayCache.set(replayKey, run);
    this.runs.push(started);
    if (this.hangs > 0) {
      this.hangs--;
      return; // the turn started; the answer never leaves
    }
    void answer(run);
  }

  /** Queues `run`'s turn after the others: it ends `turnMs` after it starts, unless the gateway stops first. */
  #turn(run: HookRun): Promise<void> {
    const ended = this.#queue.then(() =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#turnTimers.delete(timer);
          this.ended.push(run);
          resolve();
        }, this.#turnMs);
        this.#turnTimers.add(timer);
      })
    );
    this.#queue = ended;
    return ended;
  }

  #send(res: ServerResponse, status: number, body: unknown): void {
    this.answered.push(status);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
  }
}
