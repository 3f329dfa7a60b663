/** The HTTP side of `interop serve`: the broker's routes behind their guards, on the runtime's server. */
import type { Authenticator } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import type { AgentName } from "../message.ts";
import { checkOrigin } from "../http/origin_check.ts";
import { limitRequests, type RequestLimits } from "../http/request_limits.ts";
import { logRequests } from "../http/request_log.ts";
import { createRouter } from "../http/router.ts";
import { stoppingGate } from "../http/stopping_gate.ts";
import type { BrokerMetrics } from "../metrics/broker_metrics.ts";
import { serveHttp } from "../runtime/serve.ts";
import type { HttpServer } from "../runtime/types.ts";
import type { Logger } from "./logger.ts";

export interface ServeBrokerOptions {
  auth: Authenticator;
  metrics: BrokerMetrics;
  log: Logger;
  host: string;
  port: number;
  /** Names the broker is reached by besides addresses, localhost and `host` (--allowed-hosts). */
  allowedHosts: string[];
  limits: RequestLimits;
  /** Requests one agent may have in progress (--max-requests-per-agent). */
  maxRequestsPerAgent: number;
  requestTimeoutMs: number;
  /** How long a client may take nothing of what waits for it, a stream or an answer of messages (--write-timeout). */
  writeTimeoutMs: number;
  maxBodyBytes: number;
  a2aWaitMs: number;
  /** The agent whose strict A2A card is served at the origin (--a2a-origin-agent). */
  a2aOriginAgent?: AgentName;
  /** The URL the A2A cards advertise (--public-url). */
  publicUrl?: string;
  /** Log each request (--verbose). */
  verbose: boolean;
}

/**
 * Starts serving `broker` on `host`:`port`; rejects with `address_in_use` when the port is held. Closing the server
 * first turns away every new request (the broker's store closes next).
 */
export async function serveBroker(broker: Broker, options: ServeBrokerOptions): Promise<HttpServer> {
  const { log, limits } = options;
  const router = createRouter(broker, {
    auth: options.auth,
    metrics: options.metrics,
    maxBodyBytes: options.maxBodyBytes,
    a2aWaitMs: options.a2aWaitMs,
    a2aOriginAgent: options.a2aOriginAgent,
    publicUrl: options.publicUrl,
    maxRequestsPerAgent: options.maxRequestsPerAgent,
    retryMs: 2000,
    onInternalError: (error) => log.error(`request failed: ${(error as Error)?.stack ?? error}`, { error: String(error) }),
  });
  // Inside the request log, so that refusals are logged; inside the limits, which are cheaper still.
  const guarded = checkOrigin(router, { bindHost: options.host, allowedHosts: options.allowedHosts });
  const gate = stoppingGate(limitRequests(options.verbose ? logRequests(guarded, log.debug) : guarded, limits), options.maxBodyBytes);
  const server = await serveHttp({
    hostname: options.host,
    port: options.port,
    handler: gate.handler,
    maxRequestHeadBytes: limits.maxHeaderBytes + limits.maxUrlBytes + 4096,
    requestTimeoutMs: options.requestTimeoutMs,
    writeTimeoutMs: options.writeTimeoutMs,
    maxIncomingConnections: limits.maxConnections,
  });
  return {
    hostname: server.hostname,
    port: server.port,
    close: () => {
      gate.stop();
      return server.close();
    },
  };
}
