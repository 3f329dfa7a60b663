/** What `listen` pushes to an agent's own inbound path: the request for each message, per kind of receiver. */
import { createHmac } from "node:crypto";
import { InteropError } from "../errors.ts";
import { fromWire, messageKey, METADATA_FIELD, payloadText } from "../message.ts";
import type { StreamedMessage } from "./follow.ts";
import { redactUrl } from "../url_redaction.ts";

export interface PushRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** How one kind of receiver takes messages. */
export interface PushTarget {
  /** The HTTP request that hands one message over; throws `rejected` for a message the receiver can never take. */
  request(message: StreamedMessage): PushRequest;
  /** 4xx statuses this receiver answers for a passing refusal: retried like a 5xx instead of parked. */
  retryStatuses?: readonly number[];
}

/** Headers every push carries: the message's key lets the receiver drop a retried delivery. */
function deliveryHeaders(message: StreamedMessage): Record<string, string> {
  const key = messageKey(fromWire(JSON.parse(message.data)));
  return { "content-type": "application/json", "idempotency-key": key, "x-request-id": key };
}

/** The message as one line of text for an agent's prompt: who sent it, its id, and what it says. */
export function renderForAgent(message: StreamedMessage): string {
  const envelope = fromWire(JSON.parse(message.data));
  return `Message ${envelope.id} from ${envelope.from} via interop: ${payloadText(envelope.payload)}`;
}

/** `--post URL`: the delivered JSON as the body, a Bearer token when given (`token`: as it is now). */
export function plainTarget(url: string, token: (() => string) | undefined): PushTarget {
  return {
    request: (message) => ({
      url,
      headers: { ...deliveryHeaders(message), ...(token ? { authorization: `Bearer ${token()}` } : {}) },
      body: message.data,
    }),
  };
}

/** The agent `/hooks/agent` starts a turn for when none is named. */
const OPENCLAW_DEFAULT_AGENT = "main";
/** The body limit of OpenClaw's hooks (fixed in 2026.9.6: `/hooks/agent` takes 262,144 bytes, no config key). */
export const OPENCLAW_MAX_BODY_BYTES = 256 * 1024;

export interface OpenclawOptions {
  /** The agent to start a turn for (default `main`); with `wake`, the agent to wake, sent only when given. */
  agentId: string | undefined;
  /**
   * POST `/hooks/wake` instead of `/hooks/agent`. Lossy: the gateway keeps wake events in memory only (at most 20
   * per session, gone on restart), ignores Idempotency-Key, and a multi-agent gateway needs `agentId` for them.
   */
  wake: boolean;
  /**
   * Ask the gateway to answer once the turn ended (`waitForCompletion`), not once it accepted it: a gateway killed
   * before then drops the turns it accepted (it keeps them in memory), and only an unanswered push is pushed again.
   */
  waitForTurn: boolean;
  /** The gateway's hooks body limit: a larger request is parked here instead of sent. */
  maxBodyBytes: number;
}

/**
 * `--openclaw URL`: OpenClaw's gateway hooks. By default `/hooks/agent` starts a turn for the agent; the gateway
 * de-duplicates it by Idempotency-Key (a replay gets the same runId), so a retried push never starts a second
 * turn. The hooks token goes in the header (OpenClaw refuses tokens in the query string).
 */
export function openclawTarget(gatewayUrl: string, token: () => string, options: OpenclawOptions): PushTarget {
  const base = gatewayUrl.replace(/\/+$/, "");
  const url = options.wake ? `${base}/hooks/wake` : `${base}/hooks/agent`;
  return {
    // "hook configuration changed; retry request": a config reload raced the request, which was not taken.
    retryStatuses: [409],
    request(message) {
      const text = renderForAgent(message);
      const body = JSON.stringify(
        options.wake
          ? { text, mode: "now", ...(options.agentId === undefined ? {} : { agentId: options.agentId }) }
          : { message: text, agentId: options.agentId ?? OPENCLAW_DEFAULT_AGENT, ...(options.waitForTurn ? { waitForCompletion: true } : {}) },
      );
      const bytes = new TextEncoder().encode(body).byteLength;
      if (bytes > options.maxBodyBytes) {
        // The gateway would answer 413 (2026.9.6 does, with Connection: close); its body reader may also cut the
        // connection first, and a push never answered would be retried for good.
        throw new InteropError(
          "rejected",
          `Message ${message.id} makes a ${formatBytes(bytes)}-byte request to ${redactUrl(url)}, over OpenClaw's hooks body limit of ` +
            `${formatBytes(options.maxBodyBytes)} bytes (if your gateway's differs, pass it as --openclaw-max-body)`,
        );
      }
      return { url, headers: { ...deliveryHeaders(message), authorization: `Bearer ${token()}` }, body };
    },
  };
}

/** A byte count with thousands separators, as people write limits: 262,144. */
export function formatBytes(bytes: number): string {
  return bytes.toLocaleString("en-US");
}

/**
 * `--hermes-webhook URL`: Hermes's webhook adapter, signed V2: `X-Webhook-Signature-V2` is the hex HMAC-SHA256 of
 * `<timestamp>.<body>` with the route's secret, `X-Webhook-Timestamp` the Unix time in seconds. The body is the
 * delivered JSON with `message` set to the rendered text for the route's prompt template (it names the sender and
 * the id to answer, so it wins over a sender's own `message`), and `payload`, the sender's fields as posted.
 */
export function hermesWebhookTarget(url: string, secret: () => string, now: () => number = Date.now): PushTarget {
  return {
    request(message) {
      const { [METADATA_FIELD]: metadata, ...payload } = JSON.parse(message.data);
      const body = JSON.stringify({ ...payload, message: renderForAgent(message), [METADATA_FIELD]: metadata, payload });
      const timestamp = String(Math.floor(now() / 1000));
      return {
        url,
        headers: {
          ...deliveryHeaders(message),
          "x-webhook-timestamp": timestamp,
          "x-webhook-signature-v2": signHermesV2(secret(), timestamp, body),
        },
        body,
      };
    },
  };
}

export function signHermesV2(secret: string, timestamp: string, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}
