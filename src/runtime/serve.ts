/** Picks the HTTP server for the runtime we are on: `Deno.serve` under Deno, `node:http` under Node. */
import { serveWithDeno } from "./deno_server.ts";
import { serveWithNode } from "./node_server.ts";
import process from "node:process";
import type { HttpServer, ServeOptions } from "./types.ts";

/** The runtime and its version, for `/status` and the start-up log. */
export function runtimeDescription(): string {
  return "Deno" in globalThis ? `deno ${Deno.version.deno}` : `node ${process.versions.node}`;
}

export function serveHttp(options: ServeOptions): Promise<HttpServer> {
  return "Deno" in globalThis ? serveWithDeno(options) : serveWithNode(options);
}
