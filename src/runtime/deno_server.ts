/** The Deno seam: `Deno.serve` with web Request/Response. */
import { InteropError } from "../errors.ts";
import type { HttpServer, ServeOptions } from "./types.ts";
import { fromWebRequest, toWebResponse } from "./web.ts";

export function serveWithDeno(options: ServeOptions): Promise<HttpServer> {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname: options.hostname, port: options.port, onListen: () => {} },
      // `completed` settles when the response is done or the client hung up; request.signal also aborts on
      // success in Deno 2.9 and warns when watched (see --unstable-no-legacy-abort).
      async (request, info) => toWebResponse(await options.handler(fromWebRequest(request)), info.completed),
    );
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      return Promise.reject(
        new InteropError("address_in_use", `Address in use: ${options.hostname}:${options.port}`, { cause: error }),
      );
    }
    return Promise.reject(error);
  }
  return Promise.resolve({
    hostname: server.addr.hostname,
    port: server.addr.port,
    // Graceful: waits for open responses, so the broker ends its streams before calling this.
    close: () => server.shutdown(),
  });
}
