/**
 * The HTTP server, on either runtime: plain requests on the bare `node:net` socket, the rest by `node:http`. Deno
 * runs it too, rather than `Deno.serve`: measured on Deno 2.9 it answered 16 × 8 pipelined publishes at 2-3× the
 * rate (hyper answers a connection's pipelined requests one at a time, each after the previous one's commit), kept
 * 16 KiB per idle stream where `Deno.serve` keeps 69, and cost about the same per message at 16 × 1. It also
 * brings the request deadlines and the connection cap that `Deno.serve` has no hook for (denoland/deno#3515).
 */
import { serveWithNode } from "./node_server.ts";
import process from "node:process";
import type { HttpServer, ServeOptions } from "./types.ts";

/** The runtime and its version, for `/status` and the start-up log. */
export function runtimeDescription(): string {
  return "Deno" in globalThis ? `deno ${Deno.version.deno}` : `node ${process.versions.node}`;
}

export function serveHttp(options: ServeOptions): Promise<HttpServer> {
  return serveWithNode(options);
}
