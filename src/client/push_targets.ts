/** What `listen` pushes to an agent's own inbound path: the request for each message, per kind of receiver. */
import { createHmac } from "node:crypto";
import { fromWire, payloadText } from "../message.ts";
import type { StreamedMessage } from "./follow.ts";

export interface PushRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** Builds the HTTP request that hands one message to a receiver. */
export type PushTarget = (message: StreamedMessage) => PushRequest;

/** Headers every push carries: the message id lets the receiver drop a retried delivery. */
function deliveryHeaders(message: StreamedMessage): Record<string, string> {
  return {
    "content-type": "application/json",
    "idempotency-key": String(message.id),
    "x-request-id": String(message.id),
  };
}

/** The message as one line of text for an agent's prompt: who sent it, its id, and what it says. */
export function renderForAgent(message: StreamedMessage): string {
  const envelope = fromWire(JSON.parse(message.data));
  return `Message ${envelope.id} from ${envelope.from} via interop: ${payloadText(envelope.payload)}`;
}

/** `--post URL`: the delivered JSON as the body, a Bearer token when given. */
export function plainTarget(url: string, token: string | undefined): PushTarget {
  return (message) => ({
    url,
    headers: { ...deliveryHeaders(message), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: message.data,
  });
}

/**
 * `--openclaw URL`: OpenClaw's gateway hooks. `/hooks/wake` puts the message into the agent's main session at once;
 * with an agent id, `/hooks/agent` starts a turn for that agent. The hooks token goes in the header (OpenClaw
 * refuses tokens in the query string).
 */
export function openclawTarget(gatewayUrl: string, token: string, agentId: string | undefined): PushTarget {
  const base = gatewayUrl.replace(/\/+$/, "");
  return (message) => {
    const text = renderForAgent(message);
    return {
      url: agentId === undefined ? `${base}/hooks/wake` : `${base}/hooks/agent`,
      headers: { ...deliveryHeaders(message), authorization: `Bearer ${token}` },
      body: JSON.stringify(agentId === undefined ? { text, mode: "now" } : { message: text, agentId }),
    };
  };
}

/**
 * `--hermes-webhook URL`: Hermes's webhook adapter, signed V2: `X-Webhook-Signature-V2` is the hex HMAC-SHA256 of
 * `<timestamp>.<body>` with the route's secret, `X-Webhook-Timestamp` the Unix time in seconds. The body is the
 * delivered JSON plus `message` (the rendered text) for the route's prompt template.
 */
export function hermesWebhookTarget(url: string, secret: string, now: () => number = Date.now): PushTarget {
  return (message) => {
    const delivered = JSON.parse(message.data);
    const body = JSON.stringify({ message: renderForAgent(message), ...delivered });
    const timestamp = String(Math.floor(now() / 1000));
    return {
      url,
      headers: {
        ...deliveryHeaders(message),
        "x-webhook-timestamp": timestamp,
        "x-webhook-signature-v2": signHermesV2(secret, timestamp, body),
      },
      body,
    };
  };
}

export function signHermesV2(secret: string, timestamp: string, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}
