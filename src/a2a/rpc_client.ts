/**
 * JSON-RPC calls into an agent's own A2A server (the outbound listener's side): v1.0 first, v0.3 after the server
 * says it does not know the v1.0 name, and every failure sorted into retry, final, or in doubt.
 */
import { describeCause } from "../client/broker_client.ts";
import { InteropError } from "../errors.ts";
import { A2A_ERROR, A2aError, type A2aMethod, type ProtocolVersion, v03MethodName } from "./protocol.ts";

/** Connection failures that prove the request never reached the server: sending it again repeats nothing. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "bad port",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** HTTP statuses that say nothing about the request but that the server cannot take it now. */
const BUSY_STATUSES = [408, 429, 502, 503, 504];
/** Statuses of a wrong token or a peer not allowed: retried until the setup is fixed, never dead letters. */
const SETUP_STATUSES = [401, 403];

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

export interface A2aRpcClientOptions {
  url: string;
  token: string | undefined;
  timeoutMs: number;
  /** The version to start with (a server remembered as v0.3 is not asked in v1.0 again). */
  version?: ProtocolVersion;
}

export class A2aRpcClient {
  readonly url: string;
  #token: string | undefined;
  #timeoutMs: number;
  #version: ProtocolVersion;

  constructor(options: A2aRpcClientOptions) {
    this.url = options.url;
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
   * server refuses), `InDoubtError` when the request may have been taken, `A2aError` for the server's JSON-RPC
   * error, and "rejected" for an answer that is not JSON-RPC at all.
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

  async #callOnce(
    method: string,
    params: unknown,
    version: ProtocolVersion,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const body = JSON.stringify({ jsonrpc: "2.0", id: crypto.randomUUID(), method, params });
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
    // v0.3 has no header: a server reads its absence as 0.3 (the SDK's does, and Hermes refuses "0.3" outright).
    if (version === "1.0") headers["a2a-version"] = "1.0";
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers,
        body,
        signal: signal === undefined
          ? AbortSignal.timeout(this.#timeoutMs)
          : AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), signal]),
      });
      text = await response.text();
    } catch (cause) {
      const timedOut = (cause as Error)?.name === "TimeoutError";
      const reason = timedOut ? `no answer within ${this.#timeoutMs} ms` : describeCause(cause);
      const message = `${method} to ${this.url} failed: ${reason}`;
      if (signal?.aborted || (!timedOut && NOT_SENT.has(reason))) {
        throw new InteropError("unreachable", message, { cause });
      }
      throw new InDoubtError(message, cause);
    }
    const retryAfter = Number(response.headers.get("retry-after")) || undefined;
    const detail = `${method} to ${this.url} answered HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
    if (SETUP_STATUSES.includes(response.status)) {
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
    let answer: { result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
    try {
      answer = JSON.parse(text);
    } catch {
      throw new InteropError("rejected", `${detail}; that is not an A2A (JSON-RPC) answer`, {
        status: response.status,
      });
    }
    const error = answer?.error;
    if (error !== undefined && error !== null && typeof error.code === "number") {
      const rpcError = { code: error.code, message: typeof error.message === "string" ? error.message : "" };
      if (isRateLimit(rpcError)) {
        throw new InteropError("unreachable", `${method} to ${this.url}: ${rpcError.message}`, { retryAfter });
      }
      throw new A2aError(
        rpcError.code,
        `${method} to ${this.url} answered error ${rpcError.code}: ${rpcError.message}`,
        error.data,
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
