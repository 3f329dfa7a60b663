/**
 * JSON-RPC calls into an agent's own A2A server (the outbound listener's side): v1.0 first, v0.3 after the server
 * says it does not know the v1.0 name, and every failure sorted into retry, final, or in doubt.
 */
import { createParser } from "eventsource-parser";
import { CONNECT_FAILURES, describeCause } from "../client/fetch_failures.ts";
import { NO_REDIRECTS, redirectProblem } from "../client/redirects.ts";
import { authorizationHeader, splitCredentials } from "../client/url_credentials.ts";
import { InteropError } from "../errors.ts";
import { readLimited } from "../runtime/read_body.ts";
import { redactUrl } from "../url_redaction.ts";
import { A2A_ERROR, A2aError, type A2aMethod, type ProtocolVersion, v03MethodName } from "./protocol.ts";
import { retryAfterSeconds } from "../client/retry_after.ts";

/**
 * The most a task stream carries before it is given up (its task is then asked for with GetTask), and the most an
 * answer may hold: an event that never ends, events without end, or an endless JSON answer would otherwise be held
 * in memory, and no answer this big can be published.
 */
const MAX_STREAM_BYTES = 32 * 1024 * 1024;

/** HTTP statuses that say nothing about the request but that the server cannot take it now. */
const BUSY_STATUSES = [408, 429, 502, 503, 504];
/**
 * Statuses of a wrong token, a peer not allowed or a wrong path: retried until the setup is fixed, never dead
 * letters, as listen's other receivers. A 404 also comes from a server on its way down: OpenClaw's gateway answers
 * it on /a2a/v1 for about a second while it drains after SIGTERM, and taken as final it parked every message sent
 * then and told the senders of tasks it went on to finish that they failed. One carrying a JSON-RPC error is that
 * error (`#resultOf`).
 */
const SETUP_STATUSES = [401, 403, 404];

/**
 * A rate limit answered inside JSON-RPC: OpenClaw `-32000 "Peer is rate limited"` (HTTP 200), Hermes `-32051`
 * (with HTTP 429, caught before). The request was not taken.
 */
function isRateLimit(error: { code: number; message: string }): boolean {
  return (error.code === -32000 && /rate limit/i.test(error.message)) || error.code === -32051;
}

/**
 * A call whose request may have reached the server although no answer came (a timeout, a connection cut after
 * sending): repeating it could make the receiver act twice.
 */
export class InDoubtError extends InteropError {
  constructor(message: string, cause: unknown) {
    super("rejected", message, { cause });
    this.name = "InDoubtError";
  }
}

/**
 * A call that never reached the server (refused, unresolvable, or given up on purpose): "unreachable" as any call the
 * server cannot take now, but known to have had no answer at all, where a 5xx or a 429 is one.
 */
export class NotSentError extends InteropError {
  constructor(message: string, cause: unknown) {
    super("unreachable", message, { cause });
    this.name = "NotSentError";
  }
}

export interface A2aRpcClientOptions {
  url: string;
  /** The Bearer token as it is now (its file read again when it changed: `followedSecret`), if any. */
  token: (() => string) | undefined;
  timeoutMs: number;
  /** The version to start with (a server remembered as v0.3 is not asked in v1.0 again). */
  version?: ProtocolVersion;
}

export class A2aRpcClient {
  /**
   * The server's URL as errors and logs show it: a password or a `?token=` in it hidden, since what is said about a
   * failed call also goes to the broker (a dead letter's reason) and to the asker.
   */
  readonly url: string;
  /** Where requests go: the URL without its user and password, which go as `basic` unless there is a token. */
  #target: { url: string; basic: string | undefined };
  #token: (() => string) | undefined;
  #timeoutMs: number;
  #version: ProtocolVersion;

  constructor(options: A2aRpcClientOptions) {
    this.url = redactUrl(options.url);
    this.#target = splitCredentials(options.url);
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs;
    this.#version = options.version ?? "1.0";
  }

  /** The version the server speaks, as far as its answers told. */
  get version(): ProtocolVersion {
    return this.#version;
  }

  /**
   * Calls `method` and returns its `result`. `-32601` to a v1.0 name, or `-32009` to the v1.0 header, switches to
   * v0.3 for good and asks again (the request was refused, not taken). `params` builds the body per version.
   * `signal` abandons the call (a shutdown): only for calls that are safe to repeat, as an aborted request may
   * have been taken.
   *
   * Throws `InteropError` "unreachable" for what a retry may mend (not reached, busy, rate limited, a token the
   * server refuses, a redirect), `InDoubtError` when the request may have been taken, `A2aError` for the server's
   * JSON-RPC error, and "rejected" for an answer that is not JSON-RPC at all.
   */
  async call(method: A2aMethod, params: (version: ProtocolVersion) => unknown, signal?: AbortSignal): Promise<unknown> {
    for (;;) {
      const version = this.#version;
      try {
        return await this.#callOnce(
          version === "1.0" ? method : v03MethodName(method),
          params(version),
          version,
          signal,
        );
      } catch (error) {
        const refusedVersion = error instanceof A2aError &&
          (error.code === A2A_ERROR.methodNotFound || error.code === A2A_ERROR.versionNotSupported);
        if (!refusedVersion || version === "0.3") throw error;
        this.#version = "0.3";
      }
    }
  }

  /**
   * Calls a streaming `method` (SubscribeToTask) in the version the server speaks, with no fallback to v0.3: a
   * server that speaks v1.0 but does not stream answers `-32601` too (Hermes; OpenClaw `-32004`). Yields each event's
   * `result`; ends when the server ends the stream, or after `quietMs` without a byte (a connection that died
   * unnoticed), or on `signal`. Throws as `call` does, and "rejected" past MAX_STREAM_BYTES; a JSON (not SSE)
   * answer is read as one result.
   */
  async *stream(
    method: A2aMethod,
    params: (version: ProtocolVersion) => unknown,
    quietMs: number,
    signal: AbortSignal,
  ): AsyncGenerator<unknown> {
    const version = this.#version;
    const name = version === "1.0" ? method : v03MethodName(method);
    const quiet = new AbortController();
    let timer = setTimeout(() => quiet.abort(), quietMs);
    try {
      const id = crypto.randomUUID();
      const response = await this.#post(name, id, params(version), version, AbortSignal.any([quiet.signal, signal]), "text/event-stream");
      if (!isEventStream(response)) {
        yield this.#resultOf(name, id, response, await answerText(response));
        return;
      }
      const results: unknown[] = [];
      let failure: Error | undefined;
      const parser = createParser({
        onEvent: (event) => {
          try {
            results.push(this.#resultOf(name, id, response, event.data));
          } catch (error) {
            failure ??= error as Error;
          }
        },
      });
      const reader = response.body!.getReader();
      // A pending body read is not always ended by the fetch's signal (Deno 2.9): cancelling the reader ends it.
      const cancel = () => void reader.cancel().catch(() => {});
      quiet.signal.addEventListener("abort", cancel, { once: true });
      signal.addEventListener("abort", cancel, { once: true });
      const decoder = new TextDecoder();
      let streamed = 0;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          streamed += value.byteLength;
          if (streamed > MAX_STREAM_BYTES) {
            throw new InteropError("rejected", `${name} to ${this.url} streamed over ${MAX_STREAM_BYTES >> 20} MiB without settling the task`);
          }
          clearTimeout(timer);
          timer = setTimeout(() => quiet.abort(), quietMs);
          parser.feed(decoder.decode(value, { stream: true }));
          yield* results.splice(0);
          if (failure !== undefined) throw failure;
        }
      } catch (error) {
        if (quiet.signal.aborted || signal.aborted) return;
        throw error;
      } finally {
        signal.removeEventListener("abort", cancel);
        cancel();
      }
    } catch (error) {
      // A quiet stream is not an error: the caller asks for the task another way.
      if (quiet.signal.aborted && !signal.aborted) return;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async #callOnce(
    method: string,
    params: unknown,
    version: ProtocolVersion,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const id = crypto.randomUUID();
    const response = await this.#post(method, id, params, version, signal === undefined ? timeout : AbortSignal.any([timeout, signal]), "application/json");
    let text: string;
    try {
      text = await answerText(response);
    } catch (cause) {
      throw this.#failure(method, cause, signal);
    }
    // A server that streams whatever was asked (red team 56: a SendMessage answered with one SSE event) took the
    // request: its first event is the answer, where read as JSON it was parked as "not an A2A answer".
    return this.#resultOf(method, id, response, isEventStream(response) ? firstEventData(text) : text);
  }

  /** POSTs one JSON-RPC request; a failure before any answer is sorted as `call` says. */
  async #post(
    method: string,
    id: string,
    params: unknown,
    version: ProtocolVersion,
    signal: AbortSignal,
    accept: string,
  ): Promise<Response> {
    const body = JSON.stringify({ jsonrpc: "2.0", id, method, params });
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept,
      ...authorizationHeader(this.#target.basic, this.#token?.()),
    };
    // v0.3 has no header: a server reads its absence as 0.3 (the SDK's does, and Hermes refuses "0.3" outright).
    if (version === "1.0") headers["a2a-version"] = "1.0";
    try {
      return await fetch(this.#target.url, { method: "POST", headers, body, signal, ...NO_REDIRECTS });
    } catch (cause) {
      throw this.#failure(method, cause, signal);
    }
  }

  /** A request that got no answer: not sent (or abandoned on purpose), or in doubt. */
  #failure(method: string, cause: unknown, signal: AbortSignal | undefined): InteropError {
    const timedOut = (cause as Error)?.name === "TimeoutError";
    const reason = timedOut ? `no answer within ${this.#timeoutMs} ms` : describeCause(cause);
    const message = `${method} to ${this.url} failed: ${reason}`;
    if ((signal?.aborted && !timedOut) || (!timedOut && CONNECT_FAILURES.has(reason))) {
      return new NotSentError(message, cause);
    }
    return new InDoubtError(message, cause);
  }

  /**
   * The `result` of the JSON-RPC answer to request `id` (`text`: the body, or one SSE event's data), or the error it
   * stands for.
   */
  #resultOf(method: string, id: string, response: Response, text: string): unknown {
    const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
    const redirect = redirectProblem(response, this.url);
    if (redirect !== undefined) {
      throw new InteropError("unreachable", `${method}: ${redirect} (listen retries until the server takes it)`, { retryAfter });
    }
    const detail = `${method} to ${this.url} answered HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
    const answer = parsedJson(text) as RpcAnswer | null | undefined;
    const error = answer?.error;
    const rpcError = error !== undefined && error !== null && typeof error.code === "number"
      ? { code: error.code, message: typeof error.message === "string" ? error.message : "", data: error.data }
      : undefined;
    // One carrying a JSON-RPC error is that error, whatever the status.
    if (SETUP_STATUSES.includes(response.status) && rpcError === undefined) {
      throw new InteropError(
        "unreachable",
        `${detail}; check --a2a URL and the token (listen retries until the server takes it)`,
        {
          retryAfter,
        },
      );
    }
    if (BUSY_STATUSES.includes(response.status) || response.status >= 500) {
      throw new InteropError("unreachable", detail, { retryAfter });
    }
    if (answer === undefined) {
      throw new InteropError("rejected", `${detail}; that is not an A2A (JSON-RPC) answer`, {
        status: response.status,
      });
    }
    // Another request's answer (a proxy's or a server's mix-up) says nothing of this one, which may have been taken:
    // read as its own, a send was counted done, or parked for another's error. An id left out or null is let by.
    const answerId = typeof answer === "object" && answer !== null ? (answer as { id?: unknown }).id : undefined;
    if (answerId !== undefined && answerId !== null && answerId !== id) {
      throw new InDoubtError(
        `${method} to ${this.url} was answered for another request (id ${JSON.stringify(answerId).slice(0, 60)}, not ${id}): this one may have been taken`,
        undefined,
      );
    }
    if (rpcError !== undefined) {
      if (isRateLimit(rpcError)) {
        throw new InteropError("unreachable", `${method} to ${this.url}: ${rpcError.message}`, { retryAfter });
      }
      throw new A2aError(
        rpcError.code,
        `${method} to ${this.url} answered error ${rpcError.code}: ${rpcError.message}`,
        rpcError.data,
      );
    }
    if (!response.ok || answer === null || typeof answer !== "object" || !("result" in answer)) {
      throw new InteropError("rejected", `${detail}; that is not an A2A (JSON-RPC) answer`, {
        status: response.status,
      });
    }
    return answer.result;
  }
}

/** A JSON-RPC answer as it may come: its fields are checked before use. */
type RpcAnswer = { result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };

/** `text` parsed as JSON, or undefined when it is not JSON (JSON itself never parses to undefined). */
function parsedJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isEventStream(response: Response): boolean {
  return (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
}

/** The data of the first event in a whole SSE `text` ("" when it has none: not an answer). */
function firstEventData(text: string): string {
  let first: string | undefined;
  const parser = createParser({ onEvent: (event) => void (first ??= event.data) });
  parser.feed(text);
  // An answer whose last event has no blank line after it (the stream ended there) still has that event.
  parser.feed("\n\n");
  return first ?? "";
}

/** A JSON answer's text, refused past MAX_STREAM_BYTES: an agent server's answer is never held whole without end. */
async function answerText(response: Response): Promise<string> {
  if (response.body === null) return "";
  return new TextDecoder().decode(await readLimited(response.body, response.headers.get("content-length"), MAX_STREAM_BYTES));
}
