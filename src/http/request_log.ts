/** `--verbose` request logging: method, path, the agent named, status and time; streams also when they end. */
import { parseAgentName } from "../message.ts";
import { type Handler, isStream } from "../runtime/types.ts";
import { watchStream } from "./responses.ts";

/**
 * Wraps a handler so that each request is logged once answered, as a sentence and as fields (method, path,
 * agent/from/to, status, ms; a stream's end with its seconds). Only the path and the agent-naming parameters
 * are logged, each an agent name or `(invalid)`: never the query as a whole (it may hold `?token=`), never a body.
 */
export function logRequests(handler: Handler, debug: (message: string, fields: Record<string, string | number>) => void): Handler {
  return async (request) => {
    const started = performance.now();
    const response = await handler(request);
    const { searchParams, pathname } = request.url;
    const agents = ["agent", "from", "to"].filter((key) => searchParams.has(key)).map((key) => [key, loggedName(searchParams.get(key)!)]);
    const path = loggedPath(pathname);
    const what = [request.method, path, ...agents.map(([key, value]) => `${key}=${value}`)].join(" ");
    const fields = { method: request.method, path, ...Object.fromEntries(agents), status: response.status };
    const took = (performance.now() - started).toFixed(1);
    if (!isStream(response)) {
      debug(`${what} → ${response.status} (${took} ms)`, { ...fields, ms: Number(took) });
      return response;
    }
    debug(`${what} → ${response.status}: stream opened (${took} ms)`, { ...fields, ms: Number(took), stream: "opened" });
    let opened = 0;
    return watchStream(
      response,
      () => (opened = performance.now()),
      () => {
        const seconds = ((performance.now() - opened) / 1000).toFixed(1);
        debug(`${what}: stream closed after ${seconds} s`, { ...fields, stream: "closed", seconds: Number(seconds) });
      },
    );
  };
}

/**
 * A name as logged: an agent name as given, anything else a fixed marker, so that a request can neither forge log
 * lines nor put a token in the log (`?agent=alice;token=itk_…`, a `;` typed for `&`).
 */
function loggedName(value: string): string {
  try {
    return parseAgentName(value);
  } catch {
    return "(invalid)";
  }
}

/**
 * A path as logged: each segment as a name would be (every route's words are; an ntfy sender, `@hermes`, after its
 * `@`), so that a token a client put in the path by mistake (`/ntfy/TOKEN/json`, `/TOKEN`) is `(invalid)` there too.
 */
function loggedPath(pathname: string): string {
  return pathname.split("/").map(loggedSegment).join("/");
}

function loggedSegment(segment: string): string {
  if (segment === "" || segment === ".well-known") return segment;
  return segment.startsWith("@") ? `@${loggedName(segment.slice(1))}` : loggedName(segment);
}
