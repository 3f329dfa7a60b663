/**
 * Reads the head of a plain HTTP/1.1 request: a GET, or a POST whose body has a declared length; the request
 * shapes the Node seam answers on the bare socket. Anything else, or anything unusual, is `undefined`, and
 * `node:http` (whose parser knows every corner of HTTP) takes the connection instead, so this reader can stay
 * small and strict.
 */

export interface RequestHead {
  method: "GET" | "POST";
  /** The request target as sent: an origin-form path with its query. */
  target: string;
  /** Header fields by lower-case name; values as bytes read in latin1, the way `node:http` gives them. */
  headers: Record<string, string>;
  /** The size of the header fields (names and values), for the broker's header cap. */
  headerBytes: number;
  /** The body's declared length (0 for a GET). */
  bodyBytes: number;
  /** The client said `Connection: close`. */
  closeAfter: boolean;
}

const REQUEST_LINE = /^(GET|POST) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
const FIELD = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*$/;
/** Fields that frame a body another way or change the connection's protocol: such requests go to `node:http`. */
const NOT_PLAIN = new Set(["transfer-encoding", "expect", "upgrade"]);

/** `text` is the head in latin1, up to (not including) the blank line that ends it. */
export function parseRequestHead(text: string): RequestHead | undefined {
  const lines = text.split("\r\n");
  const requestLine = REQUEST_LINE.exec(lines[0]);
  if (requestLine === null) return undefined;
  const headers: Record<string, string> = Object.create(null);
  let headerBytes = 0;
  for (let i = 1; i < lines.length; i++) {
    const field = FIELD.exec(lines[i]);
    if (field === null) return undefined;
    const name = field[1].toLowerCase();
    // A repeated field has rules per name in `node:http` (joined, or all but the first dropped): leave it to them.
    if (name in headers || NOT_PLAIN.has(name)) return undefined;
    headers[name] = field[2];
    headerBytes += name.length + field[2].length;
  }
  // An HTTP/1.1 request without Host is refused with 400: it is handed to `node:http`'s side (node_server.ts) for that.
  if (headers.host === undefined) return undefined;
  const method = requestLine[1] as RequestHead["method"];
  const length = headers["content-length"];
  // A GET has no body (some clients say so, with a length of 0); a POST declares its length in digits (anything
  // else is `node:http`'s to refuse).
  if (method === "GET" ? length !== undefined && length !== "0" : length === undefined || !/^\d{1,15}$/.test(length)) return undefined;
  const closeAfter = headers.connection?.toLowerCase().split(",").some((option) => option.trim() === "close") ?? false;
  return { method, target: requestLine[2], headers, headerBytes, bodyBytes: method === "GET" ? 0 : Number(length), closeAfter };
}

/**
 * The request target as a URL. An origin-form target is always a path: `new URL("//x/status", base)` would
 * read "x" as a host (and route to /status), and `new URL("//", base)` throws. Any other form (absolute, or
 * what `node:http` lets through: `*`, `host:port`) is read as a URL when it is an http(s) one, or else kept,
 * encoded, as a path that no route matches.
 */
export function targetUrl(target: string): URL {
  if (target.startsWith("/")) return new URL(`http://localhost${target}`);
  const unrouted = () => new URL(`http://localhost/${encodeURIComponent(target)}`);
  try {
    const url = new URL(target, "http://localhost");
    // Only an http(s) target names the host the Host rule reads: `ftp://evil.example/poll` would be served as
    // /poll under the Host field's name (red team 52).
    return url.protocol === "http:" || url.protocol === "https:" ? url : unrouted();
  } catch {
    return unrouted();
  }
}
