/**
 * One connection on the bare socket (see node_bare_requests.ts for why there is one): its requests read, handled
 * side by side and answered in order, until one that is not plain hands it to `node:http`.
 */
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import process from "node:process";
import { responseHead, writeBody } from "./node_bare_response.ts";
import type { NodeConnections } from "./node_connections.ts";
import { NodeSink } from "./node_sink.ts";
import { latin1BodyText, refuseDeclaredPastLimit } from "./read_body.ts";
import { parseRequestHead, type RequestHead, targetUrl } from "./request_head.ts";
import {
  type Handler,
  handlerFailure,
  type IncomingRequest,
  isStream,
  type OutgoingResponse,
  READING_PAUSED,
  type StreamResponse,
} from "./types.ts";

/** How long a kept-alive connection may wait for its next request, as every answer says (`node:http`'s default). */
const KEEP_ALIVE_MS = 5_000;
const KEEP_ALIVE = `keep-alive: timeout=${KEEP_ALIVE_MS / 1000}\r\n`;
/**
 * How much longer than it says the connection really waits (`node:http`'s keepAliveTimeoutBuffer): a client that
 * reuses it just as the advertised time ends (undici's timers tick once a second) must not have its request, a
 * publish perhaps, meet the connection closing under it ("other side closed").
 */
const KEEP_ALIVE_GRACE_MS = 1_000;
const IDLE_CUT_MS = KEEP_ALIVE_MS + KEEP_ALIVE_GRACE_MS;
/** Larger bodies go to `node:http`, which streams them against the body cap instead of holding them whole first. */
const MAX_BARE_BODY_BYTES = 64 * 1024;
/** A connection's requests handled at once: a client that pipelines cannot pile up unbounded work. */
const MAX_IN_FLIGHT = 16;
const PLAIN_STARTS = ["GET /", "POST /"];
/**
 * How a stream's answer is framed: chunked, and saying that its connection ends with it (the broker ends a stream
 * it replaces or revokes, and no request after a stream is read). Without it an HTTP/1.1 client may pool the
 * connection at the last chunk and send its next request there, to meet the close ("other side closed").
 */
const STREAM_FRAMING = "transfer-encoding: chunked\r\nconnection: close\r\n";
const STRAY_LINE_BREAK = /\r(?!\n|$)|(?<!\r)\n/;

/** What every connection of one server shares. */
export interface BareShared {
  handler: Handler;
  maxHeadBytes: number;
  connections: NodeConnections;
  /** How long a client may take nothing of a watched answer (`BodyResponse.written`) before it is cut. */
  writeTimeoutMs: number;
  /** Connections with a request in progress (a body on its way, or an answer owed): close() gives them a grace. */
  answering: Set<Socket>;
  toHttp(socket: Socket): void;
}

/** A request of a connection, from its start until its answer is written. */
interface Pending {
  head: RequestHead;
  response: OutgoingResponse | undefined;
  gone: AbortController | undefined;
}

/**
 * One connection on the bare socket. Its pipelined requests are handled concurrently and answered in request
 * order (HTTP/1.1 orders the answers, not the work), so that the publishes of a client that pipelines join the
 * same group commit as everyone else's instead of each waiting for the previous one's.
 *
 * Order of effects: a request starts only once its predecessor is *ordered*: answered, or, for a publish, in the
 * commit queue (the handler calls `ordered()`), whose commits keep arrival order. So two publishes to one inbox
 * commit in request order whatever either awaits before enqueueing (an idempotency key, a reply's context, an
 * agent created or looked up). A GET (a poll, a wait, a stream, /status) waits for every answer before it, so it
 * reads what they wrote, as when requests were answered one at a time. A stream ends the pipeline: what follows
 * it is not read. At most MAX_IN_FLIGHT answers are owed at once, and none starts while the client leaves written
 * answers unread. Meanwhile what arrives waits, and past one request's worth the socket is no longer read (as
 * `node:http` pauses it): a client that pipelines faster than it is answered is slowed down, not cut (the answers
 * of its publishes already committed would be lost with the connection). A paused socket cannot see its client
 * leave (TCP brings the hang-up after the bytes held back), so the requests in flight that wait on their client
 * being there (a wait, an ask) end then, as its leaving would end them: the pipeline moves on, and a hang-up is
 * seen once what came before it is read. A client that half-closes is answered every request it sent whole before
 * (as `node:http` answers them), the last answer closing the connection.
 */
export class BareConnection {
  readonly #socket: Socket;
  readonly #shared: BareShared;
  /** What arrived and is not a started request yet (latin1: one character per byte). */
  #received = "";
  /** The head of the request whose body is on its way. */
  #head: RequestHead | undefined;
  #bodyStart = 0;
  /** Started requests whose answers are not written yet, in request order. */
  readonly #pending: Pending[] = [];
  /** The last started request until it is ordered: the next one starts after that. */
  #unordered: Pending | undefined;
  /** Started requests whose handlers have not answered yet. */
  #unanswered = 0;
  /** No further request is started: a stream, `Connection: close`, or a hand-off to `node:http`. */
  #stopped = false;
  #handingOff = false;
  #streaming = false;
  /** The client half-closed: what it sent whole is answered, the last answer closing the connection. */
  #ended = false;
  #idle = false;
  #corked = false;
  /** Not read: more than a request's worth arrived and cannot start yet. */
  #paused = false;
  /** An answer's big body is being written a piece at a time: nothing else is written meanwhile. */
  #writing = false;

  constructor(socket: Socket, shared: BareShared, idleMs: number) {
    this.#socket = socket;
    this.#shared = shared;
    BareConnection.#of.set(socket, this);
    socket.on("data", BareConnection.#onData).on("end", BareConnection.#onEnd).on("timeout", BareConnection.#onTimeout)
      .on("close", BareConnection.#onClose);
    this.#waitIdle(idleMs);
  }

  #read(chunk: Buffer): void {
    // Nothing more is read from a stream's client (nor after the last answer) but its hang-up.
    if (this.#stopped && !this.#handingOff) return;
    this.#received += chunk.toString("latin1");
    this.#next();
  }

  /**
   * Starts what arrived whole, while the connection may; reads no more while past a request's worth waits its turn.
   * Half-closed, the connection ends once nothing is owed and nothing sent whole waits its turn (for the client to
   * read the answers before it, say): what is left is a request cut short by the FIN.
   */
  #next(): void {
    const held = this.#startArrived();
    // Only requests waiting their turn can be past the caps (one being read is handed over before).
    this.#hold(held && this.#received.length > this.#shared.maxHeadBytes + MAX_BARE_BODY_BYTES);
    if (this.#ended && !held && this.#pending.length === 0 && !this.#writing && this.#socket.writable) {
      this.#shared.connections.endAfter(this.#socket);
    }
  }

  /**
   * Starts what arrived whole, while the connection may; a request in pieces starts its deadline. Says whether what
   * is left waits for the connection to let it start (rather than for more bytes).
   */
  #startArrived(): boolean {
    const { connections, maxHeadBytes, answering } = this.#shared;
    while (!this.#stopped && this.#unordered === undefined && this.#pending.length < MAX_IN_FLIGHT && this.#received !== "") {
      // A client that does not read its answers is not sent more (as `node:http` pauses): they would pile up here.
      if (this.#socket.writableNeedDrain) {
        // With no answer owed it waits as an idle connection does: counted, and cut if its client reads nothing
        // for as long: on the socket's timer, which each answer written out puts off, so a slow reader is not cut.
        if (this.#pending.length === 0 && !this.#idle) this.#waitIdle(IDLE_CUT_MS, true);
        this.#socket.off("drain", BareConnection.#onDrain).once("drain", BareConnection.#onDrain);
        return true;
      }
      const received = this.#received;
      let head = this.#head;
      if (head === undefined) {
        if (!PLAIN_STARTS.some((start) => received.startsWith(start) || start.startsWith(received))) {
          this.#handOff();
          return true;
        }
        const end = received.indexOf("\r\n\r\n");
        const headText = end < 0 ? received : received.slice(0, end);
        // A head past the cap goes to `node:http` for its 431, and so does a CR or LF out of pairs (a CR last in
        // what came so far may still get its LF), which it refuses at once: waiting here for a blank line that may
        // never come would hang the client.
        if (headText.length > maxHeadBytes || STRAY_LINE_BREAK.test(headText)) {
          this.#handOff();
          return true;
        }
        if (end < 0) {
          this.#partial();
          return false;
        }
        head = parseRequestHead(headText);
        if (head === undefined || head.bodyBytes > MAX_BARE_BODY_BYTES) {
          this.#handOff();
          return true;
        }
        this.#head = head;
        this.#bodyStart = end + 4;
        // A request whose body is on its way is in progress, not idle: close() gives it the streams' grace.
        answering.add(this.#socket);
      }
      const bodyEnd = this.#bodyStart + head.bodyBytes;
      if (received.length < bodyEnd) {
        this.#partial();
        return false;
      }
      if (head.method === "GET" && this.#unanswered > 0) return true;
      // latin1 keeps one character per byte, so the body's bytes are there exactly.
      const body = received.slice(this.#bodyStart, bodyEnd);
      this.#received = received.slice(bodyEnd);
      this.#head = undefined;
      this.#leaveIdle();
      connections.doneReading(this.#socket);
      this.#start(head, body);
    }
    // Stopped, what is left is never read, but by `node:http` once the answers owed are written.
    return this.#received !== "" && (!this.#stopped || this.#handingOff);
  }

  /** Stops or resumes reading; stopping ends the waits in flight, which could no longer see their client leave. */
  #hold(hold: boolean): void {
    if (hold === this.#paused) return;
    this.#paused = hold;
    if (!hold) return void this.#socket.resume();
    this.#socket.pause();
    for (const request of this.#pending) request.gone?.abort(READING_PAUSED);
  }

  #start(head: RequestHead, body: string): void {
    const request: Pending = { head, response: undefined, gone: undefined };
    this.#pending.push(request);
    this.#unordered = request;
    this.#unanswered++;
    if (head.closeAfter) this.#stopped = true;
    const ordered = () => {
      if (this.#unordered !== request) return;
      this.#unordered = undefined;
      // Not inside the predecessor's call into the broker: the next request starts from a microtask of its own.
      queueMicrotask(() => this.#next());
    };
    const clientGone = () => {
      if (request.gone === undefined) {
        request.gone = new AbortController();
        if (this.#ended || this.#socket.destroyed) request.gone.abort();
        else if (this.#paused) request.gone.abort(READING_PAUSED);
      }
      return request.gone.signal;
    };
    this.#shared.handler(bareRequest(head, body, clientGone, ordered)).catch(handlerFailure).then((response) => {
      request.response = response;
      this.#unanswered--;
      // What follows a stream is not read: the connection is the stream's.
      if (isStream(response)) this.#stopped = true;
      if (this.#unordered === request) this.#unordered = undefined;
      this.#flush();
    });
  }

  /** Writes the answers that are ready, in request order. */
  #flush(): void {
    if (this.#writing) return;
    const socket = this.#socket;
    const pending = this.#pending;
    while (pending.length > 0 && pending[0].response !== undefined) {
      const { head, response } = pending.shift()! as Pending & { response: OutgoingResponse };
      try {
        if (isStream(response)) return this.#openStream(response);
        if (socket.destroyed) {
          response.written?.();
          continue;
        }
        // With more answers owed, the ones a commit settles together leave in one write: the socket stays corked
        // until the microtasks that settle them have run (a single request's answer is written at once).
        if (pending.length > 0 && !this.#corked) {
          this.#corked = true;
          socket.cork();
          process.nextTick(BareConnection.#uncork, this);
        }
        const last = head.closeAfter || (this.#ended && pending.length === 0 && this.#received === "");
        const rest = writeBody(socket, response, last ? "connection: close\r\n" : KEEP_ALIVE, this.#shared.writeTimeoutMs);
        if (rest !== undefined) {
          // A big body goes a piece at a time: what comes after it waits for its last piece.
          this.#writing = true;
          void rest.then(() => {
            this.#writing = false;
            if (last) this.#shared.connections.endAfter(socket);
            this.#flush();
          });
          return;
        }
        if (last) this.#shared.connections.endAfter(socket);
      } catch (error) {
        handlerFailure(error);
        socket.destroy();
      }
    }
    // Closed, or ending after the last answer.
    if (!socket.writable) return;
    if (pending.length === 0) {
      if (this.#handingOff) return this.#handOff();
      if (this.#stopped) return;
      if (this.#head === undefined) this.#shared.answering.delete(socket);
    }
    // An answer may let the next request start: one held back by the cap, or a GET waiting for the answers before it.
    this.#next();
    if (this.#pending.length === 0 && this.#received === "" && !this.#stopped && !this.#ended) this.#waitIdle(IDLE_CUT_MS);
  }

  #openStream(response: StreamResponse): void {
    const socket = this.#socket;
    this.#streaming = true;
    // Opened even for a client that already hung up: its sink starts closed, and the stream's end is counted.
    if (!socket.destroyed) socket.write(responseHead(response.status, response.headers, STREAM_FRAMING));
    // A stream the broker ends (replaced, revoked) ends its connection, which its client cannot then keep.
    response.open(new NodeSink(socket, "chunked", this.#shared.connections.endAfter));
    // Its client's hang-up ends the stream (its sink sees "close"): what it sends is read, to see that. What came
    // after the stream's request is never read: not kept for the stream's life.
    this.#received = "";
    this.#hold(false);
    if (this.#ended) socket.end();
  }

  /** Waits for the next request: a kept-alive connection, or a new one (or one whose client reads slowly: `timed`). */
  #waitIdle(ms: number, timed = false): void {
    this.#idle = true;
    if (!timed) return this.#shared.connections.waitIdle(this.#socket, ms);
    this.#shared.connections.waiting.add(this.#socket);
    this.#socket.setTimeout(ms);
  }

  #leaveIdle(): void {
    if (!this.#idle) return;
    this.#idle = false;
    this.#shared.connections.leaveIdle(this.#socket);
    // On the socket's timer: a slow reader (`timed`), or an answer still going out when its idle deadline passed.
    if (this.#socket.timeout) this.#socket.setTimeout(0);
  }

  /** Part of a request has arrived: while no answer is owed, it has the request deadline to arrive whole. */
  #partial(): void {
    if (this.#pending.length > 0) return;
    // The deadline answers 408; the idle timer, left running, could close the connection first with nothing said.
    this.#leaveIdle();
    this.#shared.connections.reading(this.#socket);
  }

  /** A request that is not plain: once every answer owed is written, the connection goes to `node:http`. */
  #handOff(): void {
    this.#stopped = true;
    this.#handingOff = true;
    if (this.#pending.length > 0) return;
    const { connections, toHttp } = this.#shared;
    const socket = this.#socket;
    this.#leaveIdle();
    this.#shared.answering.delete(socket);
    // The deadline runs on in `node:http` (which has its own too) until it has the request's head.
    connections.reading(socket);
    socket.off("data", BareConnection.#onData).off("end", BareConnection.#onEnd).off("timeout", BareConnection.#onTimeout)
      .off("close", BareConnection.#onClose)
      .off("error", ignore);
    const received = Buffer.from(this.#received, "latin1");
    this.#received = "";
    toHttp(socket);
    // Handed as the first "data", before the socket reads on: Deno's node:http read what arrived next before bytes
    // put back with unshift() (a body's packets before its head: 400 "Parse Error"). Node's parser takes either.
    socket.emit("data", received);
    // node:http listens from now on: the FIN that came before is its client's too (it answers, then closes).
    if (this.#ended) socket.emit("end");
    this.#hold(false);
  }

  /**
   * A hang-up or a half-close: the client left, as `node:http` reads it, and what it sent whole is answered, started
   * as the connection lets it (the cap, the order, its reading of the answers before), each seeing its client gone;
   * then the connection ends, once the answers are written out (not destroyed: those a slow reader has not read yet
   * would go with it).
   */
  #peerEnded(): void {
    if (this.#streaming) return void this.#socket.end();
    this.#ended = true;
    for (const request of this.#pending) request.gone?.abort();
    this.#next();
  }

  /**
   * Each socket's connection, for the socket's listeners below: functions shared by every connection, where six
   * closures bound to each were ~400 bytes of every idle stream's memory (its connection lives as long).
   */
  static readonly #of = new WeakMap<Socket, BareConnection>();

  static #onData(this: Socket, chunk: Buffer): void {
    BareConnection.#of.get(this)!.#read(chunk);
  }

  static #onEnd(this: Socket): void {
    BareConnection.#of.get(this)!.#peerEnded();
  }

  static #onDrain(this: Socket): void {
    BareConnection.#of.get(this)!.#next();
  }

  static #onTimeout(this: Socket): void {
    this.destroy();
  }

  static #onClose(this: Socket): void {
    for (const request of BareConnection.#of.get(this)!.#pending) request.gone?.abort();
  }

  static #uncork(connection: BareConnection): void {
    connection.#corked = false;
    connection.#socket.uncork();
  }
}

/** `body`: read as latin1. */
function bareRequest(head: RequestHead, body: string, clientGone: () => AbortSignal, ordered: () => void): IncomingRequest {
  return {
    method: head.method,
    url: targetUrl(head.target),
    header: (name) => head.headers[name.toLowerCase()] ?? null,
    headerBytes: () => head.headerBytes,
    // async, so that a body past the cap (or not UTF-8) rejects rather than throws.
    async text(limit) {
      refuseDeclaredPastLimit(head.headers["content-length"] ?? null, limit);
      return latin1BodyText(body);
    },
    clientGone,
    ordered,
  };
}

/** Swallows a socket's errors: its "close" follows, which is where a connection ends. */
export function ignore(): void {}
