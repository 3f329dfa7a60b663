/** Picks the HTTP server for the runtime we are on: `Deno.serve` under Deno, `node:http` under Node. */
import { serveWithDeno } from "./deno_server.ts";
import { serveWithNode } from "./node_server.ts";
import type { HttpServer, ServeOptions } from "./types.ts";

export function serveHttp(options: ServeOptions): Promise<HttpServer> {
  return "Deno" in globalThis ? serveWithDeno(options) : serveWithNode(options);
}
