/**
 * The server's bare-socket path (both runtimes serve through it): a connection's plain requests are answered on
 * the socket itself (streams stay there), everything else by `node:http`. Real sockets, byte for byte.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type AddressInfo, connect, Socket } from "node:net";
import process from "node:process";
import { test } from "node:test";
import { InteropError } from "../src/errors.ts";
import { serveWithNode } from "../src/runtime/node_server.ts";
import { NodeSink } from "../src/runtime/node_sink.ts";
import { utf8Text } from "../src/runtime/read_body.ts";
import { parseRequestHead, targetUrl } from "../src/runtime/request_head.ts";
import type { Handler, HttpServer, OutgoingResponse, StreamSink } from "../src/runtime/types.ts";

/** `serve`'s defaults: the deadlines and the connection cap are tested end to end in tests/security. */
const DEADLINES = { requestTimeoutMs: 30_000, writeTimeoutMs: 60_000, maxIncomingConnections: 4096 };

class Client {
  readonly socket: Socket;
  text = "";
  readonly closed: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.setEncoding("latin1");
    this.socket.on("data", (chunk: string) => {
      this.text += chunk;
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
    this.socket.on("close", () => this.#waiters.splice(0).forEach((wake) => wake()));
  }

  /** Resolves once `text` contains `fragment` `count` times; fails if the connection closes first. */
  async waitFor(fragment: string, count = 1): Promise<string> {
    while (this.text.split(fragment).length - 1 < count) {
      if (this.socket.destroyed) throw new Error(`closed before ${JSON.stringify(fragment)} arrived; got ${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return this.text;
  }
}

/** A handler with the shapes the broker answers: a stream, text, an echoed body, no content, a bad header. */
function testHandler(streams: StreamSink[]): Handler {
  return async (request): Promise<OutgoingResponse> => {
    const path = request.url.pathname;
    if (path === "/stream") {
      return { status: 200, headers: { "content-type": "text/event-stream" }, open: (sink) => (streams.push(sink), sink.write("data: hello\n\n")) };
    }
    if (path === "/echo") {
      const body = await request.text(Number(request.url.searchParams.get("cap") ?? 100_000)).catch((error: InteropError) => error);
      if (body instanceof InteropError) return { status: body.code === "invalid_body" ? 400 : 413, headers: {}, body: body.message };
      return { status: 200, headers: { "content-type": "text/plain; charset=utf-8" }, body: `echo ${body}` };
    }
    if (path === "/empty") return { status: 204, headers: {}, body: "" };
    if (path === "/big") return { status: 200, headers: {}, body: "b".repeat(Number(request.url.searchParams.get("bytes"))) };
    if (path === "/late") return await new Promise((resolve) => setTimeout(() => resolve({ status: 200, headers: {}, body: "late answer" }), 50));
    if (path === "/until-left") {
      const gone = request.clientGone();
      await new Promise((resolve) => gone.aborted ? resolve(undefined) : gone.addEventListener("abort", resolve));
      return { status: 200, headers: {}, body: "saw the client leave" };
    }
    if (path === "/bad-header") return { status: 200, headers: { "x-bad": "a\r\nset-cookie: b" }, body: "never" };
    return { status: 200, headers: { "content-type": "text/plain" }, body: `${request.method} ${path} x=${request.header("X-Test")}` };
  };
}

async function withServer(run: (server: HttpServer, streams: StreamSink[]) => Promise<void>): Promise<void> {
  const streams: StreamSink[] = [];
  const server = await serveWithNode({ hostname: "127.0.0.1", port: 0, handler: testHandler(streams), maxRequestHeadBytes: 1024, ...DEADLINES });
  try {
    await run(server, streams);
  } finally {
    for (const sink of streams) sink.close();
    await server.close();
  }
}

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\n${extra}\r\n`;

test("a stream opened by a connection's first GET is sent chunked on the bare socket and ends with the last chunk", async () => {
  await withServer(async (server, streams) => {
    const client = new Client(server.port);
    client.socket.write(get("/stream"));
    const text = await client.waitFor("hello");
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\ncontent-type: text\/event-stream\r\n/);
    assert.match(text, /\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nd\r\ndata: hello\n\n\r\n$/);
    streams[0].write("");
    streams[0].write("data: é\n\n");
    // The client reads latin1: the chunk size counts the two bytes of "é" in UTF-8.
    await client.waitFor("\xc3\xa9");
    streams[0].close();
    await client.closed;
    assert.ok(client.text.endsWith("a\r\ndata: \xc3\xa9\n\n\r\n0\r\n\r\n"), JSON.stringify(client.text));
  });
});

test("a stream's answer on the bare socket says Connection: close, as its connection ends with the stream", async () => {
  await withServer(async (server, streams) => {
    const client = new Client(server.port);
    client.socket.write(get("/stream"));
    const head = (await client.waitFor("hello")).split("\r\n\r\n")[0];
    // Without it a kept-alive client (fetch) may pool the connection at the last chunk and send its next request
    // there, to meet the close ("other side closed").
    assert.match(head, /\r\nconnection: close(\r\n|$)/);
    streams[0].close();
    await client.closed;
  });
});

test("a client hanging up a bare-socket stream aborts its sink's signal", async () => {
  await withServer(async (server, streams) => {
    const client = new Client(server.port);
    client.socket.write(get("/stream"));
    await client.waitFor("hello");
    const aborted = new Promise((resolve) => streams[0].closed.addEventListener("abort", resolve));
    client.socket.destroy();
    await aborted;
    assert.equal(streams[0].write("data: late\n\n"), 0);
  });
});

const post = (path: string, body: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

test("a connection's plain requests are answered on the bare socket until one that is not plain hands it to node:http", async () => {
  await withServer(async (server) => {
    const client = new Client(server.port);
    client.socket.write(get("/text"));
    await client.waitFor("GET /text x=1");
    assert.match(client.text, /^HTTP\/1\.1 200 OK\r\n.*content-length: 13\r\nkeep-alive: timeout=5\r\n\r\nGET \/text x=1$/s);
    client.socket.write(post("/echo", "héllo"));
    await client.waitFor("echo h\xc3\xa9llo");
    client.socket.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nagain\r\n0\r\n\r\n");
    await client.waitFor("echo again");
    client.socket.write(get("/after"));
    await client.waitFor("GET /after x=1");
    // Both name the keep-alive timeout; node:http also says `Connection: keep-alive`, and capitalises.
    const answers = client.text.split("HTTP/1.1 200 OK").slice(1);
    assert.equal(answers.length, 4);
    for (const bare of answers.slice(0, 2)) assert.match(bare, /\r\nkeep-alive: timeout=5\r\n/);
    assert.doesNotMatch(answers[0] + answers[1], /connection:/i);
    assert.match(answers[2], /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n/);
    assert.match(answers[3], /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n/);
  });
});

test("a POST body arriving in pieces, one past the handler's cap, and one too big to hold are all answered", async () => {
  await withServer(async (server) => {
    const client = new Client(server.port);
    const whole = post("/echo", "0123456789");
    for (const piece of [whole.slice(0, 20), whole.slice(20, -4), whole.slice(-4)]) {
      client.socket.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await client.waitFor("echo 0123456789");
    // Past the handler's cap: 413, and the connection goes on.
    client.socket.write(post("/echo?cap=1000", "x".repeat(1001)) + get("/next"));
    await client.waitFor("GET /next x=1");
    assert.match(client.text, /HTTP\/1\.1 413 Payload Too Large\r\n.*too large/s);
    // Past 64 KiB a body is node:http's to stream: still answered.
    const big = "y".repeat(70_000);
    client.socket.write(post("/echo", big));
    await client.waitFor(`echo ${big}`);
  });
});

test("a body is read as UTF-8 text on the bare socket and through node:http alike, and refused when it is not UTF-8", async () => {
  await withServer(async (server) => {
    // Requests as latin1 text (one character per byte): UTF-8 text with characters past ASCII, bytes that are no UTF-8.
    const latin1 = (body: Uint8Array) => Buffer.from(body).toString("latin1");
    const sized = (body: Uint8Array) => `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${latin1(body)}`;
    const chunked = (body: Uint8Array) =>
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${latin1(body)}\r\n0\r\n\r\n`;
    const notUtf8 = new Uint8Array([0x63, 0xe9]);
    const plain = new Client(server.port);
    plain.socket.write(sized(Buffer.from("plain ascii")) + sized(Buffer.from("grüße, 日本, 🙂")) + sized(notUtf8) + get("/last"), "latin1");
    await plain.waitFor("GET /last");
    const answers = plain.text.split("HTTP/1.1 ").slice(1);
    assert.match(answers[0], /\r\n\r\necho plain ascii$/);
    assert.match(answers[1], new RegExp(`\r\n\r\n${Buffer.from("echo grüße, 日本, 🙂").toString("latin1")}$`));
    assert.match(answers[2], /^400 .*not valid UTF-8$/s);
    // A chunked body goes to node:http: the same text, the same refusal.
    const handed = new Client(server.port);
    handed.socket.write(chunked(Buffer.from("grüße, 🙂")), "latin1");
    await handed.waitFor(Buffer.from("echo grüße, 🙂").toString("latin1"));
    const refused = new Client(server.port);
    refused.socket.write(chunked(notUtf8), "latin1");
    assert.match(await refused.waitFor("UTF-8"), /^HTTP\/1\.1 400 .*not valid UTF-8$/s);
    for (const client of [plain, handed, refused]) client.socket.destroy();
  });
});

test("close() cuts a kept-alive connection that waits for its next request at once", async () => {
  const server = await serveWithNode({ hostname: "127.0.0.1", port: 0, handler: testHandler([]), maxRequestHeadBytes: 1024, ...DEADLINES });
  const client = new Client(server.port);
  client.socket.write(get("/text"));
  await client.waitFor("GET /text x=1");
  const started = performance.now();
  await server.close();
  await client.closed;
  // Not cut as idle, it would wait for the 1-second grace that streams get.
  assert.ok(performance.now() - started < 900, `close() took ${performance.now() - started} ms`);
});

test("pipelined requests and a head sent byte by byte are answered, in order", async () => {
  await withServer(async (server) => {
    const pipelined = new Client(server.port);
    pipelined.socket.write(get("/one") + post("/echo", "abc") + get("/two"));
    const text = await pipelined.waitFor("GET /two x=1");
    assert.ok(text.indexOf("GET /one") < text.indexOf("echo abc") && text.indexOf("echo abc") < text.indexOf("GET /two"));

    const trickle = new Client(server.port);
    for (const byte of get("/slow")) {
      trickle.socket.write(byte);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await trickle.waitFor("GET /slow x=1");
    // Answered on the bare socket, a CR at the end of a piece waiting for its LF (node:http's answers name the keep-alive).
    assert.doesNotMatch(trickle.text, /Keep-Alive: timeout=/);
  });
});

test("a connection's ordered requests are handled at once, 16 at most, and answered in request order whatever order they finish in", { timeout: 10_000 }, async (t) => {
  const held: (() => void)[] = [];
  let sixteen: () => void;
  const sixteenHeld = new Promise<void>((resolve) => (sixteen = resolve));
  // Each request says it is ordered at once (as a publish in the commit queue does), then waits to be let go.
  const handler: Handler = async (request) => {
    request.ordered?.();
    await new Promise<void>((resolve) => held.push(resolve) === 16 && sixteen());
    return { status: 200, headers: {}, body: `done ${request.url.pathname};` };
  };
  const server = await serveWithNode({ hostname: "127.0.0.1", port: 0, handler, maxRequestHeadBytes: 1024, ...DEADLINES });
  const client = new Client(server.port);
  t.after(async () => {
    client.socket.destroy();
    await server.close();
  });
  client.socket.write(Array.from({ length: 20 }, (_, i) => post(`/p${i}`, "x")).join(""));
  await sixteenHeld;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(held.length, 16, "the 17th waits for an answer");
  assert.equal(client.text, "");
  // Let go last first: nothing is answered before the first, then all 16 are; then the last 4 run.
  for (const release of held.splice(0).reverse()) release();
  await client.waitFor("done /p15;");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(held.length, 4);
  for (const release of held.splice(0)) release();
  const text = await client.waitFor("done /p19;");
  assert.deepEqual([...text.matchAll(/done \/p(\d+);/g)].map((match) => Number(match[1])), [...Array(20).keys()]);
});

test("Connection: close, HTTP/1.0, repeated fields and 204 are answered as HTTP says", async () => {
  await withServer(async (server) => {
    const closing = new Client(server.port);
    closing.socket.write(get("/text", "Connection: close\r\n"));
    await closing.closed;
    assert.match(closing.text, /\r\nconnection: close\r\n\r\nGET \/text x=1$/);

    const old = new Client(server.port);
    old.socket.write("GET /old HTTP/1.0\r\nX-Test: 2\r\n\r\n");
    await old.closed;
    assert.match(old.text, /^HTTP\/1\.1 200 OK\r\n.*GET \/old x=2$/s);

    const repeated = new Client(server.port);
    repeated.socket.write("GET /twice HTTP/1.1\r\nHost: x\r\nX-Test: a\r\nX-Test: b\r\n\r\n");

    // node:http refuses an HTTP/1.1 request without Host; so does the bare path, by handing it over.
    const hostless = new Client(server.port);
    hostless.socket.write("GET /text HTTP/1.1\r\n\r\n");
    await hostless.closed;
    assert.match(hostless.text, /^HTTP\/1\.1 400 /);
    await repeated.waitFor("GET /twice x=a, b");

    // 204 carries no length, from the bare path (first) and from node:http (second) alike.
    const empty = new Client(server.port);
    empty.socket.write(get("/empty"));
    await empty.waitFor("\r\n\r\n");
    empty.socket.write(get("/empty"));
    const text = await empty.waitFor("\r\n\r\n", 2);
    assert.equal(text.match(/^HTTP\/1\.1 204 No Content\r\n/gm)?.length, 2);
    assert.doesNotMatch(text, /content-length/i);
  });
});

for (const [server, request] of [["on the bare socket", get], ["by node:http", (target: string) => `GET ${target} HTTP/1.0\r\n\r\n`]] as const) {
  test(`a client that half-closes after its request is answered ${server}; what waits sees it leave, and a stream ends`, async () => {
    // node:http closed the connection at the FIN: a request's answer (a publish stored) never reached its client.
    await withServer(async (served, streams) => {
      for (const [target, answer] of [["/late", "late answer"], ["/until-left", "saw the client leave"]]) {
        const client = new Client(served.port);
        client.socket.end(request(target));
        await client.closed;
        assert.match(client.text, /^HTTP\/1\.1 200 OK\r\n/);
        assert.ok(client.text.endsWith(`\r\n\r\n${answer}`), JSON.stringify(client.text));
      }
      const streamed = new Client(served.port);
      streamed.socket.write(request("/stream"));
      await streamed.waitFor("hello");
      streamed.socket.end();
      await streamed.closed;
      const ended = streams[0].closed;
      if (!ended.aborted) await new Promise((resolve) => ended.addEventListener("abort", resolve));
    });
  });
}

test("every request a client pipelined before it half-closed is answered, in order, on the bare socket as by node:http", async () => {
  // The bare path started nothing after the FIN: the requests still queued behind the ones in flight (past the
  // in-flight cap, a GET behind an unanswered request, one node:http was to serve) went unanswered while node:http
  // answered them all, and a publish among them was never stored (red team 48).
  const chunked = `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnxt\r\n0\r\n\r\n`;
  const pipelines = {
    "on the bare socket": [post("/late", ""), get("/after-late"), ...Array.from({ length: 20 }, (_, i) => post("/echo", `e${i}`))],
    "ending with a request for node:http": [post("/late", ""), post("/echo", "plain"), chunked],
  };
  await withServer(async (server) => {
    for (const [name, requests] of Object.entries(pipelines)) {
      const client = new Client(server.port);
      client.socket.end(requests.join(""));
      await client.closed;
      const answers = client.text.split(/(?=HTTP\/1\.1 )/);
      assert.equal(answers.length, requests.length, `${name}: ${JSON.stringify(client.text)}`);
      assert.ok(answers.every((answer) => answer.startsWith("HTTP/1.1 200 OK\r\n")), name);
      assert.ok(answers[0].endsWith("late answer"), name);
      assert.ok(answers.at(-1)!.endsWith(name === "on the bare socket" ? "echo e19" : "echo nxt"), `${name}: ${answers.at(-1)}`);
    }
  });
});

test("requests held back while the client reads its answers slowly are answered after it half-closes, and no answer is cut short", async () => {
  // A FIN with nothing started (the rest waiting for the client to read) destroyed the connection: the answers still
  // in its buffer were cut short and the requests waiting were dropped. With an answer owed at the FIN, the first
  // answer written after it that filled the buffer ended the connection, dropping the rest (red team 49).
  const big = get("/big?bytes=1000000");
  const cases = [
    { name: "the FIN once the first answers fill the buffer", first: big, finAfterMs: 300 },
    { name: "the FIN with an answer owed", first: post("/late", ""), finAfterMs: 0 },
  ];
  await withServer(async (server) => {
    for (const { name, first, finAfterMs } of cases) {
      // Past what the kernel's buffers take on loopback while the client reads nothing (~4 MiB).
      const requests = [first, ...Array(9).fill(big), post("/echo", "one"), post("/echo", "two")];
      const client = new Client(server.port);
      client.socket.pause();
      client.socket.write(requests.join(""));
      if (finAfterMs > 0) await new Promise((resolve) => setTimeout(resolve, finAfterMs));
      client.socket.end();
      await new Promise((resolve) => setTimeout(resolve, 200));
      client.socket.resume();
      await client.closed;
      const answers = client.text.split(/(?=HTTP\/1\.1 )/);
      assert.equal(answers.length, requests.length, `${name}: ${answers.length} answers, ${client.text.length} bytes`);
      assert.ok(answers.slice(1, 10).every((answer) => answer.endsWith("b".repeat(1_000_000))), name);
      assert.ok(answers.at(-1)!.endsWith("echo two"), name);
    }
  });
});

test("requests pipelined behind one node:http serves wait their turn: a wait is not taken for a client that left, a stream stays open", async () => {
  // A response queued behind another has no socket of its own until its turn: read as the client gone, a pipelined
  // wait answered at once with nothing taken, and a stream ended empty (red team 48).
  const chunked = (target: string) => `POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`;
  await withServer(async (server, streams) => {
    const waiting = new Client(server.port);
    waiting.socket.write(chunked("/echo") + get("/until-left"));
    await waiting.waitFor("echo abc");
    const streamed = new Client(server.port);
    streamed.socket.write(chunked("/echo") + get("/stream"));
    await streamed.waitFor("hello");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.doesNotMatch(waiting.text, /saw the client leave/);
    assert.equal(streams[0].closed.aborted, false);
    waiting.socket.end();
    await waiting.waitFor("saw the client leave");
    streamed.socket.end();
    await streamed.closed;
  });
});

test("twenty requests pipelined on a connection node:http serves add no listener per request to its socket", async () => {
  // One "end" listener each went past Node's warning at 11, written to the broker's log once per such connection.
  const warnings: string[] = [];
  const warned = (warning: Error) => warnings.push(warning.message);
  process.on("warning", warned);
  try {
    await withServer(async (server) => {
      const client = new Client(server.port);
      const request = `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`;
      client.socket.write(request.repeat(20));
      await client.waitFor("echo abc", 20);
    });
  } finally {
    process.off("warning", warned);
  }
  assert.deepEqual(warnings, []);
});

test("a head past the cap gets 431, and a bad header value from the handler cuts only its own connection", async () => {
  await withServer(async (server) => {
    const big = new Client(server.port);
    big.socket.write(get("/big", `X-Filler: ${"x".repeat(2000)}\r\n`));
    await big.closed;
    assert.match(big.text, /^HTTP\/1\.1 431 /);

    const bad = new Client(server.port);
    bad.socket.write(get("/bad-header"));
    await bad.closed;
    assert.equal(bad.text, "");

    const next = new Client(server.port);
    next.socket.write(get("/text"));
    await next.waitFor("GET /text x=1");
    next.socket.destroy();
  });
});

test("close() cuts connections that sent nothing and streams that did not end", async () => {
  const streams: StreamSink[] = [];
  const server = await serveWithNode({ hostname: "127.0.0.1", port: 0, handler: testHandler(streams), maxRequestHeadBytes: 1024, ...DEADLINES });
  const idle = new Client(server.port);
  const partial = new Client(server.port);
  partial.socket.write("GET /str");
  const stream = new Client(server.port);
  stream.socket.write(get("/stream"));
  await stream.waitFor("hello");
  const aborted = new Promise((resolve) => streams[0].closed.addEventListener("abort", resolve));
  await server.close();
  await Promise.all([idle.closed, partial.closed, stream.closed, aborted]);
});

test("parseRequestHead() reads a plain GET (with no body, or a length of 0) or a POST with a declared length, and leaves anything else to node:http", () => {
  assert.deepEqual(parseRequestHead("GET /subscribe?agent=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID:  7 \r\nConnection: Keep-Alive, Close"), {
    method: "GET",
    target: "/subscribe?agent=a",
    headers: Object.assign(Object.create(null), { host: "x", "last-event-id": "7", connection: "Keep-Alive, Close" }),
    headerBytes: "hostx".length + "last-event-id7".length + "connectionKeep-Alive, Close".length,
    bodyBytes: 0,
    closeAfter: true,
  });
  assert.equal(parseRequestHead("GET / HTTP/1.1\r\nHost: x")?.closeAfter, false);
  assert.equal(parseRequestHead("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0")?.bodyBytes, 0);
  assert.equal(parseRequestHead("POST /broadcast?from=a HTTP/1.1\r\nHost: x\r\nContent-Length: 12")?.bodyBytes, 12);
  for (
    const head of [
      "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1",
      "GET / HTTP/1.0\r\nHost: x",
      "GET http://x/ HTTP/1.1\r\nHost: x",
      "GET / HTTP/1.1\nHost: x",
      "GET / HTTP/1.1\r\nHost: x\r\n folded",
      "GET / HTTP/1.1\r\nHost: x\r\nhost: y",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
      "POST / HTTP/1.1\r\nHost: x",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue",
      "GET / HTTP/1.1\r\nBad Name: x\r\nHost: x",
      "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b",
      "GET / HTTP/1.1\r\nX: no host",
    ]
  ) {
    assert.equal(parseRequestHead(head), undefined, JSON.stringify(head));
  }
});

test("a request followed by garbage is answered, and then the garbage gets node:http's 400", async () => {
  await withServer(async (server) => {
    const client = new Client(server.port);
    client.socket.write(post("/echo", "ok") + "%%% nonsense\r\n\r\n");
    await client.closed;
    assert.match(client.text, /^HTTP\/1\.1 200 OK\r\n.*echo ok.*HTTP\/1\.1 400 /s);
  });
});

test("targetUrl() reads an origin-form target as a path, never as a host, and never throws", () => {
  assert.equal(targetUrl("//evil.example/status?x=1").href, "http://localhost//evil.example/status?x=1");
  assert.equal(targetUrl("//").pathname, "//");
  assert.equal(targetUrl("/poll?agent=a").searchParams.get("agent"), "a");
  assert.equal(targetUrl("http://other/status").pathname, "/status");
  assert.equal(targetUrl("http://[bad").pathname, "/http%3A%2F%2F%5Bbad");
  assert.equal(targetUrl("ftp://evil.example/poll").pathname, "/ftp%3A%2F%2Fevil.example%2Fpoll");
});

/** What a handler saw of a request, the same way from either server, for comparing them. */
function echoOf(method: string, url: URL, header: (name: string) => string | null, body: string): string {
  const headers = ["host", "x-a", "content-type", "content-length", "last-event-id"].map((name) => [name, header(name)]);
  return JSON.stringify({ method, target: url.pathname + url.search, headers, body });
}

/** Sends raw bytes on a fresh connection; resolves with the first answer's status and body (or "none"). */
async function firstAnswer(port: number, bytes: string): Promise<string> {
  const client = new Client(port);
  client.socket.write(Buffer.from(bytes, "latin1"));
  const timer = setTimeout(() => client.socket.destroy(), 2000);
  try {
    await client.waitFor("\r\n\r\n");
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(client.text)?.[1] ?? 0);
    const start = client.text.indexOf("\r\n\r\n") + 4;
    while (client.text.length < start + length && !client.socket.destroyed) await client.waitFor(client.text.slice(-1), client.text.split(client.text.slice(-1)).length);
    const status = client.text.slice(9, 12);
    // Refusals are compared by status: the broker's server words its 4xx bodies in JSON, a bare node:http does not.
    return status === "200" ? `${status} ${client.text.slice(start, start + length)}` : status;
  } catch {
    return "none";
  } finally {
    clearTimeout(timer);
    client.socket.destroy();
  }
}

test("for any request, the bare path's reading agrees with node:http's own", async () => {
  const { createServer } = await import("node:http");
  const fc = (await import("fast-check")).default;
  const reference = createServer((req, res) => {
    // RFC 9112 (3.2) refuses several Host fields, as the broker's server does; node:http alone keeps the first.
    if (req.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === "host").length > 1) return void res.writeHead(400).end();
    const parts: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => parts.push(chunk)).on("end", () => {
      const value = (name: string) => {
        const found = req.headers[name];
        return found === undefined ? null : Array.isArray(found) ? found.join(", ") : found;
      };
      // What the bare path's text() gives: the body as UTF-8, or a refusal (400) when it is not.
      let body: string;
      try {
        body = utf8Text(Buffer.concat(parts));
      } catch {
        return void res.writeHead(400).end();
      }
      const echo = echoOf(req.method!, targetUrl(req.url!), value, body);
      res.setHeader("content-length", Buffer.byteLength(echo));
      res.end(echo);
    });
  });
  await new Promise<void>((resolve) => reference.listen(0, "127.0.0.1", resolve));
  const bare = await serveWithNode({
    hostname: "127.0.0.1",
    port: 0,
    maxRequestHeadBytes: 16 * 1024,
    ...DEADLINES,
    handler: async (request) => {
      // A client that gave up mid-body (a declared length never sent) has nobody left to answer.
      const body = await request.text(1 << 20).catch(() => undefined);
      return body === undefined ? { status: 400, headers: {}, body: "" } : { status: 200, headers: {}, body: echoOf(request.method, request.url, request.header, body) };
    },
  }).catch(async (error) => {
    // Nothing else would close the reference server, and a listening server keeps the test run from ending.
    await new Promise((resolve) => reference.close(resolve));
    throw error;
  });
  // "Ã©" is "é" in UTF-8 read as latin1 (a body's text is UTF-8); "é" and "\xff" alone are not UTF-8.
  const piece = fc.constantFrom("", " ", "\t", "\r", "\n", "\r\n", "\0", "é", "Ã©", "\xff", ":", ",", "a", "0", "5", "-", "/", "?", "%", "x-a");
  const text = fc.array(piece, { maxLength: 6 }).map((parts) => parts.join(""));
  const request = fc.record({
    method: fc.constantFrom("GET", "POST", "PUT", "get", "GET "),
    target: fc.oneof(fc.constant("/echo?x=1"), text.map((t) => `/${t}`), text),
    version: fc.constantFrom("HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/11"),
    host: fc.constantFrom("Host: x\r\n", "Host: x\r\n", "", "host:\r\n", "Host: x\r\nHost: y\r\n"),
    fields: fc.array(fc.tuple(fc.constantFrom("X-A", "x-a", "Content-Type", "Last-Event-ID", "X A", "Content-Length", "Transfer-Encoding"), text), { maxLength: 4 }),
    body: text,
    // Never bytes past the request (a body shorter than sent, or one without a length): they are a second,
    // garbled request, which node:http refuses before it has answered the first (its parser runs ahead of the
    // answer); the bare path answers the first, then hands the garbage over for its 400 (the test below).
    length: fc.constantFrom("right", "none", "more"),
    eol: fc.constantFrom("\r\n", "\r\n", "\n"),
  });
  try {
    await fc.assert(
      fc.asyncProperty(request, async ({ method, target, version, host, fields, body, length, eol }) => {
        const bodyBytes = Buffer.byteLength(body, "latin1");
        const declared = { right: bodyBytes, none: undefined, more: bodyBytes + 3 }[length];
        const lines = [`${method} ${target} ${version}`, ...fields.map(([name, value]) => `${name}: ${value}`)];
        if (declared !== undefined) lines.push(`Content-Length: ${declared}`);
        const raw = `${lines.join(eol)}${eol}${host}${eol}${declared === undefined ? "" : body}`;
        const [fromBare, fromReference] = await Promise.all([firstAnswer(bare.port, raw), firstAnswer((reference.address() as AddressInfo).port, raw)]);
        assert.equal(fromBare, fromReference, JSON.stringify(raw));
      }),
      { numRuns: 300, seed: Number(process.env.SEAM_SEED ?? 20261126) },
    );
  } finally {
    await bare.close();
    await new Promise((resolve) => reference.close(resolve));
    reference.closeAllConnections();
  }
});

test("a stream opened for a client that hung up while it was prepared ends: what its opening listens for hears it", async () => {
  const gone = new Socket();
  gone.destroy();
  const sink = new NodeSink(gone, "chunked");
  let ended = false;
  sink.closed.addEventListener("abort", () => (ended = true), { once: true });
  assert.equal(sink.write("data: x\n\n"), 0, "nothing written to a socket that is gone");
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(ended, "the stream's end was heard");
});

test("a kept-alive connection that sends nothing more is closed, with nothing said, a second after the keep-alive time it announced", { timeout: 15_000 }, async (t) => {
  await withServer(async (server) => {
    const client = new Client(server.port);
    // Past the test's timeout, the wait below ends and the server closes.
    t.after(() => client.socket.destroy());
    client.socket.write(get("/text"));
    await client.waitFor("GET /text x=1");
    const answered = performance.now();
    await client.closed;
    const waited = performance.now() - answered;
    // 5 s said, 1 s of grace; deadlines are swept, so met up to a tenth of the request deadline late (here 1 s).
    assert.ok(waited > 5_900 && waited < 8_000, `closed after ${Math.round(waited)} ms`);
    assert.equal(client.text.split("HTTP/1.1 ").length, 2, "one answer, then nothing");
  });
});

test("a new connection that sends nothing is closed, with nothing said, at the request deadline", { timeout: 10_000 }, async (t) => {
  let client: Client | undefined;
  const server = await serveWithNode({ hostname: "127.0.0.1", port: 0, handler: testHandler([]), maxRequestHeadBytes: 1024, ...DEADLINES, requestTimeoutMs: 1_000 });
  t.after(() => {
    client?.socket.destroy();
    return server.close();
  });
  client = new Client(server.port);
  const opened = performance.now();
  await client.closed;
  const waited = performance.now() - opened;
  assert.ok(waited > 900 && waited < 2_000, `closed after ${Math.round(waited)} ms`);
  assert.equal(client.text, "");
});

test("a kept-alive connection says how long it waits and is still open for a request sent just after that", { timeout: 15_000 }, async () => {
  await withServer(async (server) => {
    const client = new Client(server.port);
    client.socket.write(get("/text"));
    assert.match(await client.waitFor("GET /text x=1"), /\r\nkeep-alive: timeout=5\r\n/);
    // A client reusing the connection as the advertised 5 s end (undici's keep-alive timer ticks once a second)
    // must get its answer, not "other side closed" under a publish.
    await new Promise((resolve) => setTimeout(resolve, 5_200));
    client.socket.write(get("/again"));
    await client.waitFor("GET /again x=1");
    client.socket.destroy();
  });
});

// Hermes's red team, stop 56: the broker frozen 10 s (SIGSTOP), a client's POST sent on its kept-alive connection
// meanwhile was cut unanswered when it woke (its idle deadline looked before the request was read): lost, as httpx
// does not retry a POST.
test("a request sent on a kept-alive connection while the server stalls past its keep-alive is answered, not cut", { timeout: 15_000 }, async () => {
  await withServer(async (server) => {
    const client = new Client(server.port);
    client.socket.write(get("/text"));
    await client.waitFor("GET /text x=1");
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    // Stalled in the loop's check phase, as a process stopped anywhere may be: its next turn starts with timers.
    await new Promise((resolve) => setImmediate(resolve));
    // Written now, read by the server only after its stall: the process stops here for what it takes (the
    // connection's 6 s to be cut, counted from the answer).
    client.socket.write(get("/again"));
    const stalledUntil = performance.now() + 2_500;
    while (performance.now() < stalledUntil) {
      // Stalled.
    }
    await client.waitFor("GET /again x=1");
    client.socket.destroy();
  });
});
