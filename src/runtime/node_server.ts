/** The Node seam: plain requests answered on the bare socket, the rest by `node:http`; no web streams on the hot path. */
import { Buffer } from "node:buffer";
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { InteropError } from "../errors.ts";
import { sweepPeriod } from "./deadline_sweep.ts";
import { errorJson, NodeConnections, rawErrorAnswer } from "./node_connections.ts";
import { bodyReadFailure, LimitedBody, requestTimeout, utf8Text } from "./read_body.ts";
import { NodeSink } from "./node_sink.ts";
import { cutBodyWhenClientLeaves, whenClientLeaves } from "./client_leaving.ts";
import { targetUrl } from "./request_head.ts";
import { answerOnBareSocket } from "./node_bare_requests.ts";
import { writeInPieces } from "./piece_writes.ts";
import { watchWritten } from "./written_watch.ts";
import { type ListenerWatch, watchListener } from "./listener_watch.ts";
import { type BodyResponse, handlerFailure, hasNullBody, type HttpServer, type IncomingRequest, isStream, type ServeOptions } from "./types.ts";

export function serveWithNode(options: ServeOptions): Promise<HttpServer> {
  const timeoutMs = options.requestTimeoutMs;
  const connections = new NodeConnections(options.maxIncomingConnections, timeoutMs);
  const server = http.createServer({
    // The parser's own cap sits above the broker's header and URL caps, so those answer first with a JSON error.
    maxHeaderSize: options.maxRequestHeadBytes,
    // Deadlines for receiving a request, head and body, never for its answer: streams and waits run on. (The
    // socket's idle timeout, `timeout`, stays 0 for them.)
    headersTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    connectionsCheckingInterval: sweepPeriod(timeoutMs),
    // Its refusal of an HTTP/1.1 request without Host is an empty 400: refused below as JSON, like every other error.
    requireHostHeader: false,
  }, (req, res) => {
    connections.httpRequest(req.socket, res);
    const refusal = hostRefusal(req);
    const answer = refusal !== undefined ? Promise.resolve(refusal) : options.handler(fromNodeRequest(req, res));
    answer.catch(handlerFailure).then((response) => {
      if (!isStream(response)) {
        if (hasNullBody(response.status)) return void res.writeHead(response.status, response.headers).end();
        // A known length spares the client (and the socket) chunked framing.
        res.setHeader("content-length", Buffer.byteLength(response.body));
        const { written } = response;
        if (written === undefined) return void res.writeHead(response.status, response.headers).end(response.body);
        return watchWritten(res.socket, written, options.writeTimeoutMs, (done) => {
          res.writeHead(response.status, response.headers);
          // `node:http` writes the next pipelined answer once this one has ended.
          writeInPieces(response.body, (piece, last, then) => last ? res.end(piece, then) : res.write(piece, () => then()), done);
        });
      }
      res.writeHead(response.status, response.headers);
      res.flushHeaders();
      const sink = new NodeSink(res, "framed");
      response.open(sink);
      // Its last chunk written, `node:http` ends the connection (the client half-closed, or hung up).
      whenClientLeaves(req, res, () => sink.close());
    }).catch((error) => {
      // Writing the answer failed (a header `node:http` refuses): the connection is cut, the broker goes on.
      handlerFailure(error);
      res.destroy();
    });
  });
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    connections.endAfter(socket, clientErrorAnswer(error, timeoutMs));
  });
  // An `Expect` other than 100-continue, which `node:http` answers with an empty 417 of its own: as JSON, as every error.
  server.on("checkExpectation", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const expected = JSON.stringify(String(req.headers.expect).slice(0, 100));
    const body = errorJson("expectation_failed", `Expectation Failed: Expect ${expected} is not one this broker meets (only 100-continue is)`);
    res.writeHead(417, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) }).end(body);
  });
  const bareRequests = answerOnBareSocket(server, options.handler, options.maxRequestHeadBytes, connections, timeoutMs, options.writeTimeoutMs);
  // Long-lived SSE responses must never be cut by the socket's idle timeout.
  server.timeout = 0;
  // A client that half-closes after its request (`socat`, `nc -N`) is answered, as on the bare socket: by default
  // `node:http` closed the connection at the FIN, and a publish stored meanwhile was never acknowledged (its client
  // sent it again). Undocumented, but Node's own tests set it (nodejs/node#36819 kept it for that); Deno's node:http
  // reads it too.
  (server as { httpAllowHalfOpen?: boolean }).httpAllowHalfOpen = true;
  return new Promise((resolve, reject) => {
    const failedToStart = (error: NodeJS.ErrnoException) => {
      connections.stop();
      reject(
        error.code === "EADDRINUSE"
          ? new InteropError("address_in_use", `Address in use: ${options.hostname}:${options.port}`, { cause: error })
          : error,
      );
    };
    server.once("error", failedToStart);
    server.listen(options.port, options.hostname, () => {
      server.off("error", failedToStart);
      // From here an error of the listener (a failed accept) is said, not taken for a failed start, nor left unhandled.
      server.on("error", (error) => console.error("interop: the listener failed:", error.message));
      const address = server.address() as AddressInfo;
      // Deno 2.9's node:net listener stops accepting for good after running out of file descriptors once.
      const watch: ListenerWatch | undefined = "Deno" in globalThis ? watchListener(server, relistenedLog) : undefined;
      resolve({
        hostname: address.address,
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            watch?.stop();
            server.close(() => {
              connections.stop();
              done();
            });
            server.closeIdleConnections();
            bareRequests.closeIdle();
            // Streams get a moment to end themselves (the broker closes them); then whatever is left is cut.
            setTimeout(() => {
              server.closeAllConnections();
              bareRequests.closeAll();
            }, 1000).unref();
          }),
      });
    });
  });
}

/** What the listener watch did: said on stderr, as an accept failure is in Node (there, by `node:net` itself). */
function relistenedLog(error?: Error): void {
  if (error === undefined) console.error("interop: the listener had stopped accepting (out of file descriptors?): listening again");
  else console.error("interop: listening again failed, tried again in a moment:", error.message);
}

/** An HTTP/1.1 request without Host, refused as `node:http` would (`requireHostHeader`), but as JSON. */
const MISSING_HOST: BodyResponse = {
  status: 400,
  headers: { "content-type": "application/json; charset=utf-8", connection: "close" },
  body: errorJson("invalid_request", "Bad Request: an HTTP/1.1 request needs a Host header"),
};

/** A request with several Host fields, which RFC 9112 (3.2) says to refuse: `node:http` kept the first. */
const SEVERAL_HOSTS: BodyResponse = {
  status: 400,
  headers: { "content-type": "application/json; charset=utf-8", connection: "close" },
  body: errorJson("invalid_request", "Bad Request: a request may have one Host header, not several"),
};

/**
 * The refusal RFC 9112 (3.2) asks of a request's Host fields: none in HTTP/1.1, or several (a proxy in front may read
 * another of them than the broker's Host rule would). An HTTP/1.0 request may have none (the Host rule then has
 * nothing to refuse: no browser sends one so).
 */
function hostRefusal(req: http.IncomingMessage): BodyResponse | undefined {
  if (req.httpVersion === "1.1" && req.headers.host === undefined) return MISSING_HOST;
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i].toLowerCase() === "host") hosts++;
  return hosts > 1 ? SEVERAL_HOSTS : undefined;
}

/** `node:http`'s refusals of what it could not read, as JSON like every other error. */
function clientErrorAnswer(error: NodeJS.ErrnoException, timeoutMs: number): string {
  if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    return rawErrorAnswer(408, "Request Timeout", "request_timeout", requestTimeout(timeoutMs).message);
  }
  if (error.code === "HPE_HEADER_OVERFLOW") {
    return rawErrorAnswer(431, "Request Header Fields Too Large", "headers_too_large", `Request Header Fields Too Large: ${error.message}`);
  }
  return rawErrorAnswer(400, "Bad Request", "invalid_request", `Bad Request: ${error.message}`);
}

function fromNodeRequest(req: http.IncomingMessage, res: http.ServerResponse): IncomingRequest {
  let gone: AbortController | undefined;
  const url = targetUrl(req.url ?? "/");
  // An absolute-form target (`GET http://name/path`) names its host itself, and the Host field is then ignored (RFC
  // 9112, 3.2.2): the Host rule reads the target's name, which it passed over for a Host of 127.0.0.1.
  const targetHost = /^https?:\/\//i.test(req.url ?? "") ? url.host : undefined;
  return {
    method: req.method ?? "GET",
    url,
    header(name) {
      if (targetHost !== undefined && name.toLowerCase() === "host") return targetHost;
      const value = req.headers[name.toLowerCase()];
      return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
    },
    headerBytes() {
      // A method, not a getter: an accessor on this per-request object made the heap grow by ~150 MiB under load.
      let total = 0;
      for (const name in req.headers) {
        const value = req.headers[name];
        total += name.length + (Array.isArray(value) ? value.join(", ").length : value?.length ?? 0);
      }
      return total;
    },
    text: async (limit) => utf8Text(await readNodeBody(req, limit)),
    clientGone() {
      if (gone === undefined) {
        const controller = gone = new AbortController();
        whenClientLeaves(req, res, () => controller.abort());
      }
      return gone.signal;
    },
  };
}

/** Node's stream events, not its async iterator: the iterator's promise machinery showed in the publish profile. */
function readNodeBody(req: http.IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let body: LimitedBody;
    try {
      body = new LimitedBody(req.headers["content-length"] ?? null, limit);
    } catch (error) {
      // A declared length past the limit: the body is read and dropped too. Node's server dumps an unread body
      // once the answer ends, Deno's node:http does not, and a client still sending it never read the 413.
      req.resume();
      return reject(error);
    }
    const stopWatching = cutBodyWhenClientLeaves(req);
    const fail = (error: unknown) => {
      stopWatching();
      req.off("data", add).off("end", end);
      // The rest of an oversized body is read and dropped, so the answer can still reach the client.
      req.resume();
      reject(error);
    };
    const add = (chunk: Uint8Array) => {
      try {
        body.add(chunk);
      } catch (error) {
        fail(error);
      }
    };
    const end = () => {
      stopWatching();
      resolve(body.bytes());
    };
    // "error" is the connection ending before the body did (Node 24: "aborted", ECONNRESET).
    req.on("data", add).once("end", end).once("error", (error) => fail(bodyReadFailure(error)));
  });
}
