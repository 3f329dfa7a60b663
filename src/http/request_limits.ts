/** Caps on what one request may hold of the broker: its header and URL size, and a place among the open requests. */
import { InteropError } from "../errors.ts";
import { type Handler, type IncomingRequest, isStream, type OutgoingResponse } from "../runtime/types.ts";
import { errorResponse } from "./error_response.ts";
import { watchStream } from "./responses.ts";

export interface RequestLimits {
  /** Requests in progress at once, open streams included (idle keep-alive sockets are not counted). */
  maxConnections: number;
  /** Total size of a request's header names and values. */
  maxHeaderBytes: number;
  /** Length of a request's path and query. */
  maxUrlBytes: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxConnections: 4096, maxHeaderBytes: 16 * 1024, maxUrlBytes: 8 * 1024 };

/**
 * Places past `maxConnections` that only `GET /status` and `GET /metrics` may take, so the operator can always see
 * what holds the others. Both answer at once, never wait, so a handful is plenty.
 */
export const OPERATOR_PLACES = 8;

/**
 * Wraps a handler so that requests past a limit get 414, 431 or 503 with a JSON error instead of reaching it. A
 * place is held from the request's head to its answer's end: a wait or stream whose client left frees it then.
 */
export function limitRequests(handler: Handler, limits: RequestLimits): Handler {
  let open = 0;
  return async (request) => {
    const urlBytes = request.url.pathname.length + request.url.search.length;
    if (urlBytes > limits.maxUrlBytes) {
      return errorResponse(new InteropError("url_too_long", `URL too long: ${urlBytes} bytes; the limit is ${limits.maxUrlBytes} (--max-url-bytes)`));
    }
    const headerBytes = request.headerBytes();
    if (headerBytes > limits.maxHeaderBytes) {
      return errorResponse(
        new InteropError(
          "headers_too_large",
          `Request headers too large: ${headerBytes} bytes; the limit is ${limits.maxHeaderBytes} (--max-header-bytes)`,
        ),
      );
    }
    if (open >= limits.maxConnections && !(open < limits.maxConnections + OPERATOR_PLACES && isOperatorLook(request))) {
      return errorResponse(
        new InteropError(
          "too_many_connections",
          `Too many connections: ${open} requests and streams are open, the limit is ${limits.maxConnections} (--max-connections); retry later`,
          { retryAfter: 1 },
        ),
      );
    }
    open++;
    return await heldUntilAnswered(handler(request), () => open--);
  };
}

/**
 * Resolves with `answer`, calling `release` once it is given: when it is ready, or for a stream when the stream
 * ends (however it ends), or when it fails.
 */
export async function heldUntilAnswered(answer: Promise<OutgoingResponse>, release: () => void): Promise<OutgoingResponse> {
  let response;
  try {
    response = await answer;
  } catch (error) {
    release();
    throw error;
  }
  if (!isStream(response)) {
    release();
    return response;
  }
  return watchStream(response, () => {}, release);
}

/** `GET /status` and `GET /metrics`: they answer at once, and the operator must always be able to look. */
export function isOperatorLook(request: IncomingRequest): boolean {
  return request.method === "GET" && (request.url.pathname === "/status" || request.url.pathname === "/metrics");
}
