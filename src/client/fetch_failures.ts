/** What a failed fetch of the broker means: no connection made, a proxy answering for it, TLS, and why, in words. */
import { constants } from "node:os";
import { redactCredentials } from "../url_redaction.ts";

/**
 * Node's fetch (undici) names some failures by codes of its own, which say nothing to a reader of a log or of a dead
 * letter's reason (`UND_ERR_SOCKET`): they are said in words, the code after them.
 */
const UNDICI_FAILURES = new Map([
  ["UND_ERR_SOCKET", "the connection closed before an answer came"],
  ["UND_ERR_CONNECT_TIMEOUT", "no connection within the connect timeout"],
  ["UND_ERR_HEADERS_TIMEOUT", "no answer within the headers timeout"],
  ["UND_ERR_BODY_TIMEOUT", "the answer's body stopped coming"],
]);

function inWords(code: string): string {
  const words = UNDICI_FAILURES.get(code);
  return words === undefined ? code : `${words} (${code})`;
}

/** Failures of a fetch that mean no connection was made, so the broker or receiver cannot have had the request. */
export const CONNECT_FAILURES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "bad port",
  inWords("UND_ERR_CONNECT_TIMEOUT"),
]);

/** A proxy's answers when it could not reach the broker or its answer did not come. */
export const GATEWAY_FAILURES = new Set([502, 503, 504]);

/** Whether an error answer is the broker's own (a JSON `{"error", "code"}`), not a proxy's page. */
export function isBrokerError(text: string): boolean {
  try {
    return typeof (JSON.parse(text) as { code?: unknown })?.code === "string";
  } catch {
    return false;
  }
}

/**
 * A certificate or TLS protocol failure, as each runtime names it: Node's codes (`DEPTH_ZERO_SELF_SIGNED_CERT`,
 * `ERR_SSL_WRONG_VERSION_NUMBER`, `CERT_HAS_EXPIRED`), Deno's prose (`invalid peer certificate: UnknownIssuer`,
 * `received corrupt message of type InvalidContentType`).
 */
export function isTlsFailure(reason: string): boolean {
  return /CERT|SSL|TLS|UNABLE_TO_(GET|VERIFY)|certificate|corrupt message/i.test(reason);
}

/**
 * Why a fetch failed, the same on both runtimes: Node's fetch names the errno (`ECONNREFUSED`); Deno 2.9's says
 * it in prose (`client error (Connect): tcp connect error: Connection refused (os error 111)`), which becomes the
 * errno's name too.
 */
export function describeCause(cause: unknown): string {
  const inner = (cause as { cause?: { code?: string; message?: string } })?.cause;
  if (inner?.code !== undefined) return inWords(inner.code);
  const text = inner?.message ?? (cause as Error)?.message ?? String(cause);
  const osError = /\(os error (\d+)\)/.exec(text);
  if (osError !== null) {
    const name = Object.entries(constants.errno).find(([, number]) => number === Number(osError[1]))?.[0];
    if (name !== undefined) return name;
  }
  if (/dns error|failed to lookup address/.test(text)) return "ENOTFOUND";
  // Node's fetch quotes a header value it refuses in full (`Headers.append: "Bearer …" is an invalid header
  // value.`): that value may be the token, so it is never repeated.
  if (/header/i.test(text)) return "a request header has an invalid value (not shown: it may be a token)";
  // Both refuse the ports the fetch standard blocks (e.g. 1, 9, 6000): Node says "bad port".
  if (/Requests to port \d+ are blocked/.test(text)) return "bad port";
  // Deno's prose names the URL it was sending to (with its ?token=): what is said of a failure may be parked at
  // the broker as a dead letter's reason, past the stderr backstop.
  return redactCredentials(text);
}
