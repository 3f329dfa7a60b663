/** What the operator watches: the live feed of all traffic (`/events`), `/metrics`, the chart history (`/stats`), the dashboard. */
import { authorizeAdmin, type Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import { InteropError } from "../errors.ts";
import { toWire, type Envelope } from "../message.ts";
import type { BrokerMetrics } from "../metrics/broker_metrics.ts";
import type { BodyResponse, OutgoingResponse } from "../runtime/types.ts";
import { DASHBOARD_SCRIPT } from "../dashboard/app_script.ts";
import { DASHBOARD_HTML } from "../dashboard/page.ts";
import { AgentShares } from "./agent_shares.ts";
import { jsonResponse, NO_SNIFF, streamResponse } from "./responses.ts";
import { encodeComment, encodeEvent, encodeRetry } from "./sse.ts";

/** A feed whose client stops reading is cut past this much buffered: it is a view, it reconnects and misses nothing stored. */
const FEED_HIGH_WATER_BYTES = 1024 * 1024;
const FEED_KEEPALIVE_MS = 15_000;
/**
 * Live feeds one caller may have open at once: a token's agent, or without tokens every caller together. Each feed
 * is written every message it shows in the publish's own turn, so their number multiplies what one publish costs:
 * one agent's token with 500 feeds (within its --max-requests-per-agent share) made each 1 MB publish of its own
 * hold every other request for 21-28 s. A dashboard tab needs one.
 */
export const MAX_FEEDS_PER_CALLER = 8;

/** `GET /events` for `caller`, refused 429 past its MAX_FEEDS_PER_CALLER open feeds; one a broker. */
export function eventsRoute(broker: Broker, retryMs: number): (caller: Caller) => Promise<OutgoingResponse> {
  const feeds = new AgentShares(MAX_FEEDS_PER_CALLER, (holder, held, max) =>
    new InteropError(
      "too_many_requests",
      `Too many live feeds for ${holder === "" ? "callers without a token" : `agent ${holder}`}: ${held} open, the most one ` +
        `caller may have is ${max} (each is written every message it shows as it is published); close one or retry later`,
      { retryAfter: 1 },
    ));
  return (caller) => feeds.hold(caller === "anyone" ? "" : caller.agent, () => Promise.resolve(eventsFeed(broker, caller, retryMs)));
}

/**
 * `GET /events`: every message as it is published, without taking it from any inbox. An admin (or anyone,
 * without tokens) sees all traffic; an agent's token sees what it sent and what was sent to it.
 */
function eventsFeed(broker: Broker, caller: Caller, retryMs: number): OutgoingResponse {
  const visible = (envelope: Envelope) =>
    caller === "anyone" || caller.admin || envelope.from === caller.agent || envelope.to === caller.agent;
  return streamResponse("text/event-stream; charset=utf-8", (sink) => {
    sink.write(encodeRetry(retryMs) + encodeComment("interop live feed"));
    const keepalive = setInterval(() => sink.write(encodeComment("keepalive")), FEED_KEEPALIVE_MS);
    const detach = broker.observe({
      published(envelopes) {
        for (const envelope of envelopes.filter(visible)) {
          const buffered = sink.write(encodeEvent({ id: envelope.id, event: "message", data: JSON.stringify(toWire(envelope)) }));
          if (buffered > FEED_HIGH_WATER_BYTES) return sink.destroy();
        }
      },
    });
    sink.closed.addEventListener("abort", () => {
      clearInterval(keepalive);
      detach();
    }, { once: true });
  });
}

/** `GET /metrics`: the Prometheus text format; with tokens on, for admin tokens only. */
export function metricsResponse(metrics: BrokerMetrics, caller: Caller): BodyResponse {
  authorizeAdmin(caller, "/metrics");
  return {
    status: 200,
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store", ...NO_SNIFF },
    body: metrics.render(),
  };
}

/** `GET /stats`: messages per second and mean latency over the last ten minutes, for the dashboard's chart. */
export function statsResponse(metrics: BrokerMetrics, caller: Caller): BodyResponse {
  authorizeAdmin(caller, "/stats");
  return jsonResponse(200, {
    seconds: metrics.history().map(({ time, published, delivered, latencyMs }) => ({
      time: new Date(time).toISOString(),
      published,
      delivered,
      latency_ms: Math.round(latencyMs * 100) / 100,
    })),
  });
}

/** `GET /ui` and `/ui/app.js`: the dashboard page (it asks for a token itself when the broker has tokens). */
export function dashboardResponse(path: "/ui" | "/ui/app.js"): BodyResponse {
  return {
    status: 200,
    headers: {
      "content-type": path === "/ui" ? "text/html; charset=utf-8" : "text/javascript; charset=utf-8",
      "cache-control": "no-store",
      // Nothing from elsewhere and no inline script: markup injected through a message could not run anything.
      // No site may frame it either (a framed send form can be clicked through a decoy): frame-ancestors, and
      // X-Frame-Options for browsers that predate it.
      "content-security-policy": "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
      "x-frame-options": "DENY",
      ...NO_SNIFF,
    },
    body: path === "/ui" ? DASHBOARD_HTML : DASHBOARD_SCRIPT,
  };
}
