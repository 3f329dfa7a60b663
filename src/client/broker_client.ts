/** The one HTTP client the subcommands share: send, poll, status, and opening a stream. */
import { type ErrorCode, InteropError } from "../errors.ts";
import { type AgentName, type Payload, type WireMessage } from "../message.ts";
import type { StatusReport } from "../status_report.ts";
import type { AgentEntry } from "../http/agent_routes.ts";
import type { ListedDeadLetter, Redelivery } from "../broker/dead_letters.ts";
import { MORE_PENDING_HEADER } from "../broker/message_answer.ts";
import { LEASE_HEADER, LEASE_LOST_HEADER } from "../broker/inbox_leases.ts";
import { BrokerUrls } from "./broker_urls.ts";
import { redactUrl } from "../url_redaction.ts";
import { isMessage, isMessages, isObject, isSendReply } from "./answer_shapes.ts";
import { CONNECT_FAILURES, describeCause, GATEWAY_FAILURES, isBrokerError, isTlsFailure } from "./fetch_failures.ts";
import { authorizationHeader, splitCredentials } from "./url_credentials.ts";
import { retryAfterSeconds } from "./retry_after.ts";

/** The broker's answer to a redelivery of dead letters (`POST /dead-letters/redeliver`): what was left, as counted. */
export type RedeliveryAnswer = Omit<Redelivery, "left"> & { dead_letters: number };

/** The broker's answer to a publish. */
export interface SendReply {
  delivered: true;
  id: number;
  ids: number[];
  to: string[];
  timestamp: string;
  /** A broadcast's recipients left out (full inboxes), and why. */
  refused?: { agent: string; code: string; reason: string }[];
  /** A retried keyed broadcast: whom the first attempt left out is not known. */
  refusals_unknown?: true;
}

/**
 * Where a listener stands: the last id it has, and the identity of the store that assigned it (undefined when not
 * known: a broker older than store identities, or a state file saved by an older listen).
 */
export interface StreamPosition {
  id: number;
  store: string | undefined;
}

export interface BrokerClientOptions {
  /** Per request, except streams; default 10 s. */
  timeoutMs?: number;
  /** Sent as `Authorization: Bearer …` when the broker has tokens. */
  token?: string;
}

/** How long one attempt at a request may take, and the caller's own cancel (which never moves on to another broker). */
interface Deadline {
  timeoutMs?: number;
  cancel?: AbortSignal;
}

const MISSING_TOKEN = "Missing token: the broker has tokens; pass --token-file FILE or set INTEROP_TOKEN";

export class BrokerClient {
  /** The brokers to try, in turn, when one cannot be reached: as shown (a password in one replaced by `***`). */
  readonly urls: BrokerUrls;
  /** Where requests to each shown URL go, and the Basic credentials its user and password make. */
  #targets: Map<string, { url: string; basic: string | undefined }>;
  #timeoutMs: number;
  #token: string | undefined;
  /**
   * The store on which this client read each agent's inbox (the answer's `Interop-Store`): later reads say so
   * (`Interop-Had-Inbox`), and that store refuses one (410 `agent_removed`) once the operator removed the agent,
   * instead of creating its inbox again, as listen's resumes do.
   */
  #inboxStores = new Map<AgentName, string>();

  /** `baseUrls`: one broker, or several on one shared database (tried in turn). */
  constructor(baseUrls: string | readonly string[], options: BrokerClientOptions = {}) {
    const given = typeof baseUrls === "string" ? [baseUrls] : baseUrls;
    this.#targets = new Map(given.map((url) => [redactUrl(url), splitCredentials(url)]));
    this.urls = new BrokerUrls(given.map(redactUrl));
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#token = options.token;
  }

  /** The broker requests go to now. */
  get baseUrl(): string {
    return this.urls.current;
  }

  /**
   * Publishes `payload` from `from` to `to` (or to every other known agent). With `replyTo` it answers that
   * message, and goes back to its sender unless `to` says otherwise; with `key`, a retry is not stored twice.
   * Without one it sends a random key: a publish whose answer was lost and that is retried on the next broker is
   * then stored once by brokers that share a database. With `holdReplySeconds` (and `to`), the reply to it is held
   * from `from`'s other in-order readers from its commit, up to that long, until a leased reply wait for it
   * (`waitLeasedReply`) holds it (a broker older than held replies refuses it: 400 `invalid_query`).
   */
  send(
    from: AgentName,
    to: AgentName | undefined,
    payload: Payload,
    options: { replyTo?: number; key?: string; holdReplySeconds?: number } = {},
  ): Promise<SendReply> {
    const query = new URLSearchParams({ from });
    if (to !== undefined) query.set("to", to);
    if (options.replyTo !== undefined) query.set("reply_to", String(options.replyTo));
    if (options.holdReplySeconds !== undefined) query.set("hold_reply", String(options.holdReplySeconds));
    const request = jsonBody(payload);
    request.headers["idempotency-key"] = options.key ?? crypto.randomUUID();
    // A held reply is read from the sender's inbox: said as a read of it says it (see `#readInbox`).
    const hadInboxOn = options.holdReplySeconds === undefined ? undefined : this.#inboxStores.get(from);
    if (hadInboxOn !== undefined) request.headers["interop-had-inbox"] = hadInboxOn;
    return this.#json<SendReply>("POST", `/broadcast?${query}`, request, undefined, isSendReply);
  }

  /**
   * Sends a question and resolves with the reply; rejects with `reply_timeout` when none came in time. Aborting
   * `cancel` hangs up: the broker then keeps a later reply in the asker's inbox.
   */
  ask(
    from: AgentName,
    to: AgentName,
    payload: Payload,
    timeoutSeconds: number,
    cancel?: AbortSignal,
  ): Promise<{ question: number; reply: WireMessage }> {
    const query = new URLSearchParams({ from, to, timeout: String(timeoutSeconds) });
    return this.#json("POST", `/ask?${query}`, jsonBody(payload), longRequest(timeoutSeconds, cancel), (answer) =>
      typeof answer.question === "number" && isMessage(answer.reply));
  }

  /**
   * The agent's next message (taken), or with `replyTo` the reply to that message of the agent's, waiting up to
   * `timeoutSeconds`; null when none came.
   */
  async wait(agent: AgentName, timeoutSeconds: number, replyTo?: number): Promise<WireMessage | null> {
    const query = new URLSearchParams({ agent, timeout: String(timeoutSeconds) });
    if (replyTo !== undefined) query.set("reply_to", String(replyTo));
    const response = await this.#readInbox(agent, `/wait?${query}`, longRequest(timeoutSeconds, undefined));
    return response.status === 204 ? null : this.#expect(await this.#parse(response), isMessage);
  }

  /**
   * The agent's next message within `timeoutSeconds` (null if none came), taken by no one: shown under a lease on
   * the inbox for `leaseSeconds`, for `poll(agent, 1, id, lease)` to take. A broker older than this ignores the
   * lease and takes the message, as `wait` does: its answer then has no `lease`.
   */
  async waitLeased(agent: AgentName, timeoutSeconds: number, leaseSeconds: number): Promise<{ message: WireMessage; lease?: string } | null> {
    const query = new URLSearchParams({ agent, timeout: String(timeoutSeconds), peek: "1", lease: String(leaseSeconds) });
    const response = await this.#readInbox(agent, `/wait?${query}`, longRequest(timeoutSeconds, undefined));
    if (response.status === 204) return null;
    return { message: this.#expect(await this.#parse(response), isMessage), lease: response.headers.get(LEASE_HEADER) ?? undefined };
  }

  /**
   * The reply to the agent's message `replyTo` within `timeoutSeconds` (null if none came), taken by no one: shown
   * under a lease on the inbox for `leaseSeconds`, for `takeOne(agent, id, lease)` to take alone, or `poll(agent, 1,
   * 0, lease)` to leave in the inbox. A broker older than leased waits ignores the lease and takes the reply, as
   * `wait` does: its answer then has no `lease`. One older than leased reply waits refuses (`invalid_query`).
   */
  async waitLeasedReply(
    agent: AgentName,
    timeoutSeconds: number,
    replyTo: number,
    leaseSeconds: number,
  ): Promise<{ message: WireMessage; lease?: string } | null> {
    const query = new URLSearchParams({ agent, timeout: String(timeoutSeconds), reply_to: String(replyTo), peek: "1", lease: String(leaseSeconds) });
    const response = await this.#readInbox(agent, `/wait?${query}`, longRequest(timeoutSeconds, undefined));
    if (response.status === 204) return null;
    return { message: this.#expect(await this.#parse(response), isMessage), lease: response.headers.get(LEASE_HEADER) ?? undefined };
  }

  /** Takes the agent's message `id` alone, out of order, ending `lease` (the one it was shown under); null if another reader had it. */
  async takeOne(agent: AgentName, id: number, lease: string): Promise<WireMessage | null> {
    const query = new URLSearchParams({ agent, take: String(id), lease_id: lease });
    const taken = this.#expect<WireMessage[]>(await this.#parse(await this.#readInbox(agent, `/poll?${query}`, { timeoutMs: this.#timeoutMs })), isMessages);
    return taken[0] ?? null;
  }

  /**
   * Takes the agent's undelivered messages (at most `limit`, and none above `upTo` when given); with `lease`, the one
   * a peek was granted, which the take ends.
   */
  async poll(agent: AgentName, limit: number, upTo?: number, lease?: string): Promise<WireMessage[]> {
    return (await this.takeShown(agent, limit, upTo, lease)).taken;
  }

  /**
   * `poll`, also saying whether the broker no longer held `lease` (`Interop-Lease-Lost`: it expired, or a broker of
   * its own restarted): what the client was shown and does not find in `taken`, another reader took meanwhile.
   */
  async takeShown(agent: AgentName, limit: number, upTo?: number, lease?: string): Promise<{ taken: WireMessage[]; leaseLost: boolean }> {
    const query = new URLSearchParams({ agent, limit: String(limit) });
    if (upTo !== undefined) query.set("up_to", String(upTo));
    if (lease !== undefined) query.set("lease_id", lease);
    const response = await this.#readInbox(agent, `/poll?${query}`, { timeoutMs: this.#timeoutMs });
    return { taken: this.#expect(await this.#parse(response), isMessages), leaseLost: response.headers.get(LEASE_LOST_HEADER) === "true" };
  }

  /**
   * The agent's undelivered messages (at most `limit`), taking none; `more` when the broker's answer budget (a size)
   * left some out, which the next page has. With `lease`, the inbox is held for this client `seconds` at most (from
   * now: renewed when `id` is the lease it holds), until its take: `lease` in the answer is the lease's id, which the
   * take passes back.
   */
  async peek(
    agent: AgentName,
    limit: number,
    lease?: { seconds: number; id?: string },
  ): Promise<{ messages: WireMessage[]; more: boolean; lease?: string }> {
    const query = new URLSearchParams({ agent, limit: String(limit), peek: "1" });
    if (lease !== undefined) query.set("lease", String(lease.seconds));
    if (lease?.id !== undefined) query.set("lease_id", lease.id);
    const response = await this.#readInbox(agent, `/poll?${query}`, { timeoutMs: this.#timeoutMs });
    return {
      messages: this.#expect(await this.#parse(response), isMessages),
      more: response.headers.get(MORE_PENDING_HEADER) === "true",
      lease: response.headers.get(LEASE_HEADER) ?? undefined,
    };
  }

  /**
   * The last `limit` messages of the agent's inbox, delivered or not (`GET /history`): what this broker's store holds
   * for it; reading them takes, delivers and creates nothing.
   */
  history(agent: AgentName, limit: number): Promise<WireMessage[]> {
    return this.#json<WireMessage[]>("GET", `/history?${new URLSearchParams({ agent, limit: String(limit) })}`, {}, undefined, isMessages);
  }

  /** Records that `agent`'s receiver refused message `id` for good, so it shows in status. */
  parkDeadLetter(agent: AgentName, id: number, reason: string): Promise<unknown> {
    return this.#json("POST", `/dead-letters?${new URLSearchParams({ agent })}`, jsonBody({ id, reason }));
  }

  /**
   * The agent's last `limit` dead letters, oldest first; those acknowledged only `withAcknowledged`. `more`: older
   * ones were left out of the answer, which holds only what fits in one (big messages).
   */
  async deadLetters(agent: AgentName, limit: number, withAcknowledged: boolean): Promise<{ letters: ListedDeadLetter[]; more: boolean }> {
    const query = new URLSearchParams({ agent, limit: String(limit) });
    if (withAcknowledged) query.set("acknowledged", "1");
    const response = await this.#fetch("GET", `/dead-letters?${query}`, {}, { timeoutMs: this.#timeoutMs });
    return {
      letters: this.#expect(await this.#parse(response), Array.isArray),
      more: response.headers.get(MORE_PENDING_HEADER) === "true",
    };
  }

  /** Acknowledges the agent's dead letters of `ids` (every one when undefined): the ids acknowledged, the letters left. */
  acknowledgeDeadLetters(agent: AgentName, ids: number[] | undefined): Promise<{ acknowledged: number[]; dead_letters: number }> {
    return this.#json(
      "POST",
      `/dead-letters/acknowledge?${new URLSearchParams({ agent })}`,
      jsonBody(ids === undefined ? { all: true } : { ids }),
      undefined,
      (answer) => Array.isArray(answer.acknowledged) && typeof answer.dead_letters === "number",
    );
  }

  /** Sends the messages of the agent's dead letters `ids` to it again, and acknowledges those letters. */
  redeliverDeadLetters(agent: AgentName, ids: number[]): Promise<RedeliveryAnswer> {
    return this.#json("POST", `/dead-letters/redeliver?${new URLSearchParams({ agent })}`, jsonBody({ ids }), undefined, (answer) =>
      Array.isArray(answer.redelivered) && Array.isArray(answer.unknown) && Array.isArray(answer.removed) &&
      Array.isArray(answer.refused) && typeof answer.dead_letters === "number");
  }

  /**
   * Every agent with an inbox (`GET /agents`, an admin token when the broker has tokens), and the broker's clock as
   * it answered (ISO; an older broker sends none).
   */
  agents(): Promise<{ agents: AgentEntry[]; now?: string }> {
    return this.#json<{ agents: AgentEntry[]; now?: string }>("GET", "/agents", {}, undefined, (answer) => Array.isArray(answer.agents));
  }

  /** Creates the agent's inbox; resolves with whether it was created (false: it existed). */
  async addAgent(agent: AgentName): Promise<boolean> {
    const path = `/agents?${new URLSearchParams({ agent })}`;
    return (await this.#json<{ created: boolean }>("POST", path, {}, undefined, (answer) => typeof answer.created === "boolean")).created;
  }

  /** Deletes the agent's inbox for good; `force` even with messages pending or a stream open. Resolves with the messages deleted. */
  async removeAgent(agent: AgentName, force: boolean): Promise<number> {
    const query = new URLSearchParams({ agent, ...(force ? { force: "1" } : {}) });
    return (await this.#json<{ deleted: number }>("DELETE", `/agents?${query}`, {}, undefined, (answer) => typeof answer.deleted === "number"))
      .deleted;
  }

  /** `cancel`: a listener stopping does not wait for the answer. */
  async status(cancel?: AbortSignal): Promise<StatusReport> {
    const report = await this.#json<StatusReport>("GET", "/status", {}, { timeoutMs: this.#timeoutMs, cancel }, (answer) =>
      // A broker with tokens answers a request without one with a bare liveness object.
      answer.service === "interop" || (isObject(answer.agents) && typeof answer.last_id === "number"));
    if (report.agents === undefined) {
      throw new InteropError(
        "unauthorized",
        `Broker refused (HTTP 401): ${MISSING_TOKEN}`,
        { status: 401 },
      );
    }
    return report;
  }

  /**
   * Opens the agent's SSE stream, resuming after `from` (a broker with another store reads from the agent's
   * cursor instead); resolves once the headers are in, with the identity of the broker's store and, when that is
   * not `from`'s store but the broker took its id as one of its own (a store `interop migrate` moved there), the id
   * it resumes after. `hadInboxOn`: the store on which a stream of the agent opened before; there a broker refuses
   * (`agent_removed`) to create the inbox again.
   */
  async openStream(
    agent: AgentName,
    from: StreamPosition,
    signal: AbortSignal,
    hadInboxOn?: string,
  ): Promise<{ body: ReadableStream<Uint8Array>; store: string | undefined; resumedAfter?: number }> {
    const headers: Record<string, string> = { accept: "text/event-stream", "last-event-id": String(from.id) };
    if (from.store !== undefined) headers["interop-store"] = from.store;
    if (hadInboxOn !== undefined) headers["interop-had-inbox"] = hadInboxOn;
    const response = await this.#fetch("GET", `/subscribe?${new URLSearchParams({ agent })}`, { headers }, { cancel: signal });
    if (response.body === null) throw new InteropError("rejected", "Broker sent a stream with no body");
    const resumedAfter = response.headers.get("interop-resumed-after");
    return {
      body: response.body,
      store: response.headers.get("interop-store") ?? undefined,
      ...(resumedAfter === null ? {} : { resumedAfter: Number(resumedAfter) }),
    };
  }

  /** Where the agent's inbox stands: the last message delivered to it (or the broker's last id for a new agent). */
  async position(agent: AgentName): Promise<StreamPosition> {
    const status = await this.status();
    // hasOwn: an agent named "constructor" is not the prototype's.
    const known = Object.hasOwn(status.agents, agent) ? status.agents[agent].delivered_id : undefined;
    return { id: known ?? status.last_id, store: status.store_id };
  }

  /** The store on which this client last read `agent`'s inbox (the answer's `Interop-Store`), if it did. */
  inboxStore(agent: AgentName): string | undefined {
    return this.#inboxStores.get(agent);
  }

  /** A GET of `agent`'s inbox, saying on which store this client read it before (see `#inboxStores`). */
  async #readInbox(agent: AgentName, path: string, deadline: Deadline): Promise<Response> {
    const hadInboxOn = this.#inboxStores.get(agent);
    const headers: Record<string, string> = hadInboxOn === undefined ? {} : { "interop-had-inbox": hadInboxOn };
    // From a refusal too: a wait that the agent's removal ended (410) may have been this client's first read of it.
    const answered = (response: Response) => {
      const store = response.headers.get("interop-store");
      if (store !== null) this.#inboxStores.set(agent, store);
    };
    return await this.#fetch("GET", path, { headers, answered }, deadline);
  }

  /** `fits`: whether the answer has the shape of the broker's (undefined: any JSON is taken). */
  async #json<T>(
    method: string,
    path: string,
    init: FetchInit = {},
    deadline: Deadline = { timeoutMs: this.#timeoutMs },
    fits: (answer: Record<string, unknown>) => boolean = () => true,
  ): Promise<T> {
    return this.#expect<T>(await this.#parse(await this.#fetch(method, path, init, deadline)), fits);
  }

  async #parse(response: Response): Promise<unknown> {
    try {
      return await response.json();
    } catch (cause) {
      throw new InteropError("rejected", `Broker at ${this.baseUrl} sent a reply that is not JSON`, { cause });
    }
  }

  /**
   * A 2xx answer that is not the broker's (`--url` pointing at another server, or a proxy's wrong upstream) must
   * not read as success: nothing was stored or taken.
   */
  #expect<T>(answer: unknown, fits: (answer: Record<string, unknown>) => boolean): T {
    if (typeof answer === "object" && answer !== null && fits(answer as Record<string, unknown>)) return answer as T;
    const shown = JSON.stringify(answer).slice(0, 100);
    throw new InteropError("rejected", `Broker at ${this.baseUrl} sent an answer that is not interop's: ${shown}; is --url a broker's?`);
  }

  /**
   * Fetches from the current broker, moving on to the next while one cannot be reached (refused, reset, no answer
   * within the deadline, a proxy's 502/503/504), cannot reach its store (503 `storage_unavailable`) or has every
   * connection slot taken (503 `too_many_connections`: nothing done); another non-2xx answer is the broker's own error. A request that may have reached a broker (`in_doubt`: reset,
   * timeout) moves on only when sending it twice does no harm: one with an Idempotency-Key; an ask sent again
   * would ask its question twice.
   */
  #fetch(method: string, path: string, init: FetchInit, deadline: Deadline): Promise<Response> {
    const repeatable = init.headers?.["idempotency-key"] !== undefined;
    const isDown = (error: unknown) =>
      deadline.cancel?.aborted !== true && error instanceof InteropError &&
      (error.code === "storage_unavailable" || error.code === "too_many_connections" || error.code === "unreachable" ||
        (error.code === "in_doubt" && repeatable));
    return this.urls.use((baseUrl) => this.#fetchFrom(baseUrl, method, path, init, deadline), isDown);
  }

  async #fetchFrom(
    baseUrl: string,
    method: string,
    path: string,
    init: FetchInit,
    { timeoutMs, cancel }: Deadline,
  ): Promise<Response> {
    const signals = [...(timeoutMs === undefined ? [] : [AbortSignal.timeout(timeoutMs)]), ...(cancel === undefined ? [] : [cancel])];
    const target = this.#targets.get(baseUrl)!;
    let response: Response;
    try {
      response = await fetch(target.url + path, {
        method,
        body: init.body,
        headers: { ...init.headers, ...authorizationHeader(target.basic, this.#token) },
        signal: signals.length === 0 ? undefined : AbortSignal.any(signals),
      });
    } catch (cause) {
      const reason = cause instanceof Error && cause.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : describeCause(cause);
      if (isTlsFailure(reason)) {
        throw new InteropError(
          "tls_failed",
          `Cannot talk to the broker at ${baseUrl} over TLS: ${reason}; a certificate or protocol problem (https:// to a plain HTTP port?) that retrying does not fix`,
          { cause },
        );
      }
      // A request never sent did nothing; a POST or DELETE may have been done before its answer was lost. A GET is
      // left unreachable as before: it reads, but for a /poll take, which `poll` prints before it takes.
      if (method !== "GET" && !CONNECT_FAILURES.has(reason)) {
        throw new InteropError("in_doubt", `No answer from the broker at ${baseUrl} (${reason}) after the request went out: it may have been done`, {
          cause,
        });
      }
      throw new InteropError("unreachable", `Cannot reach the broker at ${baseUrl}: ${reason}; is 'interop serve' running?`, {
        cause,
      });
    }
    init.answered?.(response);
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    if (GATEWAY_FAILURES.has(response.status) && !isBrokerError(text)) {
      // A proxy in front answered for the broker: it could not reach it, or gave up waiting for its answer.
      const reason = `HTTP ${response.status} from a proxy: ${text.slice(0, 100) || response.statusText}`;
      if (method === "GET") throw new InteropError("unreachable", `Cannot reach the broker at ${baseUrl}: ${reason}`);
      throw new InteropError("in_doubt", `No answer from the broker at ${baseUrl} (${reason}): the request may have been done`);
    }
    let error = text.slice(0, 200) || response.statusText;
    let code: ErrorCode = "rejected";
    try {
      const body = JSON.parse(text) as { error?: string; code?: ErrorCode };
      error = body.error ?? error;
      code = body.code ?? code;
    } catch {
      // Not a JSON error: an older or foreign server; the raw text is the best explanation.
    }
    // The broker's hint is for HTTP clients ("send Authorization: Bearer TOKEN"); this client's users give a token
    // as the CLI takes it.
    if (response.status === 401 && this.#token === undefined) error = MISSING_TOKEN;
    const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
    throw new InteropError(code, `Broker refused (HTTP ${response.status}): ${error}`, { status: response.status, retryAfter });
  }
}

/** A request's body and headers; `answered` sees every answer the broker gives, a refusal's before it is thrown. */
interface FetchInit {
  body?: string;
  headers?: Record<string, string>;
  answered?: (response: Response) => void;
}

function jsonBody(value: unknown): { body: string; headers: Record<string, string> } {
  return { body: JSON.stringify(value), headers: { "content-type": "application/json" } };
}

/** A request that waits on the broker gets the broker's wait plus a margin before the client gives up, or its caller's cancel. */
function longRequest(timeoutSeconds: number, cancel: AbortSignal | undefined): Deadline {
  return { timeoutMs: timeoutSeconds * 1000 + 10_000, cancel };
}
