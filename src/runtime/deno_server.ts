/** The Deno seam: `Deno.serve` with web Request/Response. */
import { InteropError } from "../errors.ts";
import { DeadlineSweep, sweepPeriod } from "./deadline_sweep.ts";
import { requestTimeout } from "./read_body.ts";
import type { HttpServer, ServeOptions } from "./types.ts";
import { fromWebRequest, toWebResponse } from "./web.ts";

export function serveWithDeno(options: ServeOptions): Promise<HttpServer> {
  // `Deno.serve` has no read timeouts and shows nothing of a request before its head is complete
  // (denoland/deno#3515): the deadline can hold only the body, which the handler reads. At it the handler answers
  // 408 and frees its place; Deno keeps reading the connection until its client leaves.
  const timeoutMs = options.requestTimeoutMs;
  const late = new DeadlineSweep<(error: unknown) => void>(sweepPeriod(timeoutMs), (fail) => fail(requestTimeout(timeoutMs)));
  const inTime = <T>(reading: Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      late.start(reject, timeoutMs);
      reading.then((body) => {
        late.delete(reject);
        resolve(body);
      }, (error) => {
        late.delete(reject);
        reject(error);
      });
    });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname: options.hostname, port: options.port, onListen: () => {} },
      // `completed` settles when the response is done or the client hung up; request.signal also aborts on
      // success in Deno 2.9 and warns when watched (see --unstable-no-legacy-abort).
      async (request, info) => toWebResponse(await options.handler(fromWebRequest(request, inTime)), info.completed),
    );
  } catch (error) {
    late.stop();
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
    close: () => server.shutdown().finally(() => late.stop()),
  });
}
