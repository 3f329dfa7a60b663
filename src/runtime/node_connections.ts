/**
 * The Node seam's connections while none of their requests is being answered: new and kept-alive ones, ones still
 * sending a request's head or body, and ones ending after their last answer. Each has a bound in time, and together
 * they are capped, so connections that send slowly, or nothing, cannot take every socket the broker may open.
 */
import { Buffer } from "node:buffer";
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { DeadlineSweep, sweepPeriod } from "./deadline_sweep.ts";
import { requestTimeout } from "./read_body.ts";

export class NodeConnections {
  /** No request in progress: new connections and kept-alive ones (their readers give them idle timers). */
  readonly waiting = new Set<Socket>();
  /** A request partly received, read on the bare socket or by `node:http`: at its deadline the client gets 408. */
  readonly #reading: DeadlineSweep<Socket>;
  /** Ending after their last answer: one whose client neither takes it nor closes is cut at its deadline. */
  readonly #closing: DeadlineSweep<Socket>;
  /** Waiting on the bare socket for a request: cut at their deadline, with nothing said (no request was started). */
  readonly #idle: DeadlineSweep<Socket>;
  /** How long each of those may wait. */
  readonly #idleMs = new Map<Socket, number>();
  /** Requests `node:http` is answering on a connection (it reads pipelined ones ahead of their answers). */
  readonly #busy = new Map<Socket, number>();
  readonly #max: number;
  readonly #timeoutMs: number;

  /** `max`: connections held at once in the states above; `timeoutMs`: how long a request may take to arrive. */
  constructor(max: number, timeoutMs: number) {
    this.#max = max;
    this.#timeoutMs = timeoutMs;
    const timedOut = rawErrorAnswer(408, "Request Timeout", "request_timeout", requestTimeout(timeoutMs).message);
    this.#reading = new DeadlineSweep(sweepPeriod(timeoutMs), (socket) => {
      this.waiting.delete(socket);
      // Written and cut at once, as `node:http` does with a request it refuses: no more of it is read.
      if (socket.writable) socket.write(timedOut);
      socket.destroy();
    });
    this.#closing = new DeadlineSweep(sweepPeriod(timeoutMs), (socket) => socket.destroy());
    this.#idle = new DeadlineSweep(sweepPeriod(timeoutMs), (socket) => {
      const ms = this.#idleMs.get(socket)!;
      this.#idleMs.delete(socket);
      // An answer still going out is not idleness: its client may be reading a large one (a /poll of 24 MB) at its
      // own pace, and cutting it loses what the poll took. From here the socket's own timer decides, which what the
      // client takes puts off (as it did before idle deadlines moved here); the bare connection clears it with the
      // next request (`leaveIdle`). A client that takes nothing is cut once that timer runs out too.
      if (socket.writableLength > 0) socket.setTimeout(ms);
      else socket.destroy();
    });
  }

  /**
   * A new connection. Past the cap, the connection that has been at it longest goes first: one ending, else one
   * sending a request, else one waiting. A slow sender is thus closed before a client that has just connected,
   * which a flood would have to outpace --max-connections times over while that client sends its request.
   */
  accept(socket: Socket): void {
    socket.once("close", () => this.#forget(socket));
    while (this.waiting.size + this.#reading.size + this.#closing.size >= this.#max) {
      const oldest = first(this.#closing.keys()) ?? first(this.#reading.keys()) ?? first(this.waiting.values());
      if (oldest === undefined) break;
      this.#forget(oldest);
      oldest.destroy();
    }
    this.waiting.add(socket);
  }

  /**
   * A bare connection waits for a request, for `ms` at most. A deadline in a sweep, not the socket's own timer:
   * armed and cleared for every request, that timer cost Deno 2.9's `node:net` ~10 µs a request (a native timer
   * each time), a third of a plain request's cost there; Node's is cheap either way.
   */
  waitIdle(socket: Socket, ms: number): void {
    this.waiting.add(socket);
    this.#idle.delete(socket);
    this.#idle.start(socket, ms);
    this.#idleMs.set(socket, ms);
  }

  /** A bare connection's request has started arriving. */
  leaveIdle(socket: Socket): void {
    this.waiting.delete(socket);
    this.#idle.delete(socket);
    this.#idleMs.delete(socket);
  }

  /** Part of a request has arrived: it now has --request-timeout to arrive whole (from its first part). */
  reading(socket: Socket): void {
    this.leaveIdle(socket);
    this.#reading.start(socket, this.#timeoutMs);
  }

  /** The request arrived whole (or `node:http` has it). */
  doneReading(socket: Socket): void {
    this.#reading.delete(socket);
  }

  /** `node:http` answers a request on `socket`; once its last answer is done, the connection waits again. */
  httpRequest(socket: Socket, response: ServerResponse): void {
    this.waiting.delete(socket);
    this.#reading.delete(socket);
    this.#busy.set(socket, (this.#busy.get(socket) ?? 0) + 1);
    response.once("close", () => {
      const left = this.#busy.get(socket)! - 1;
      if (left > 0) return void this.#busy.set(socket, left);
      this.#busy.delete(socket);
      if (!socket.destroyed) this.waiting.add(socket);
    });
  }

  /**
   * Sends `last` and ends the connection. The socket is let go once that is written: the server's sockets are
   * half-open, and a client that kept its end open would otherwise hold one for good; one that does not read its
   * answer is cut at --request-timeout. (A bound function: streams are handed it, not a closure each.)
   */
  readonly endAfter = (socket: Socket, last = ""): void => {
    if (socket.destroyed) return;
    this.leaveIdle(socket);
    this.#reading.delete(socket);
    this.#closing.start(socket, this.#timeoutMs);
    // Not ended twice: a write after the end (even of "") would destroy the socket before its last bytes left.
    if (socket.writable) socket.end(last);
    socket.destroySoon();
  };

  /** Cuts what waits for or sends a request, except `keep` (requests whose bodies are on their way get a grace). */
  closeIdle(keep: Set<Socket>): void {
    for (const socket of [...this.waiting, ...this.#reading.keys()]) keep.has(socket) || socket.destroy();
  }

  /** Cuts every connection held here. */
  closeAll(): void {
    for (const socket of [...this.waiting, ...this.#reading.keys(), ...this.#closing.keys()]) socket.destroy();
  }

  /** Stops the deadlines' timers, once the server has closed. */
  stop(): void {
    this.#reading.stop();
    this.#closing.stop();
    this.#idle.stop();
  }

  #forget(socket: Socket): void {
    this.leaveIdle(socket);
    this.#reading.delete(socket);
    this.#closing.delete(socket);
    this.#busy.delete(socket);
  }
}

/** A complete error answer with a JSON body, written straight to a socket that is then closed. */
export function rawErrorAnswer(status: number, reason: string, code: string, message: string): string {
  const body = errorJson(code, message);
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** An error's JSON body, as every answer of the broker's gives it. */
export function errorJson(code: string, message: string): string {
  return JSON.stringify({ error: message, code });
}

function first<T>(items: IterableIterator<T>): T | undefined {
  return items.next().value;
}
