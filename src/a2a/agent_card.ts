/**
 * The A2A agent cards interop serves: each agent's own (one JSON-RPC endpoint, read by v1.0 and v0.3 clients
 * alike), and the strict v1.0 card of one chosen agent at the origin, for clients that look only there.
 */
import type { AgentName } from "../message.ts";
import type { IncomingRequest } from "../runtime/types.ts";
import { VERSION } from "../version.ts";

/** Where the A2A routes live: `/a2a/<agent>` (JSON-RPC) and `/a2a/<agent>/.well-known/agent-card.json`. */
export const A2A_PREFIX = "/a2a";
/** The card's paths under an agent (and at the origin): the current name, and `agent.json` as v0.2 clients ask for it. */
export const CARD_PATHS = new Set(["/.well-known/agent-card.json", "/.well-known/agent.json"]);

/**
 * The base URL the card advertises: `publicUrl` (`serve --public-url`: behind a TLS proxy, where the request's own
 * Host and scheme are the proxy's way in, `http://127.0.0.1:18900`); else the request's `Host`, which the host rule
 * (`checkOrigin`) has already accepted as one of the broker's names (an IP address, localhost, `--host`,
 * `--allowed-hosts`), so a card can never point a client at a name of an attacker's. Without a Host (HTTP/1.0), the
 * address the request came to.
 */
export function cardBaseUrl(request: IncomingRequest, publicUrl?: string): string {
  return publicUrl ?? `http://${request.header("host") ?? request.url.host}`;
}

/** The endpoint a card of `agent` names. */
export function agentEndpoint(agent: AgentName, baseUrl: string): string {
  return `${baseUrl}${A2A_PREFIX}/${agent}`;
}

const BEARER = { scheme: "Bearer", description: "an interop token (interop token create --agent NAME)" };

/**
 * The card of `agent`: the v1.0 fields (`supportedInterfaces`, `securityRequirements`) and the v0.3 ones (`url`,
 * `protocolVersion`, `preferredTransport`, `security`) side by side, and a security scheme both versions parse:
 * each version's reader ignores the other's fields.
 */
export function agentCard(agent: AgentName, baseUrl: string): Record<string, unknown> {
  const url = agentEndpoint(agent, baseUrl);
  const { skills, ...card } = strictAgentCard(agent, baseUrl);
  return {
    ...card,
    supportedInterfaces: [
      { url, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
      { url, protocolBinding: "JSONRPC", protocolVersion: "0.3" },
    ],
    url,
    protocolVersion: "0.3.0",
    preferredTransport: "JSONRPC",
    capabilities: { streaming: true, pushNotifications: false },
    securitySchemes: { bearer: { type: "http", scheme: "bearer", httpAuthSecurityScheme: BEARER } },
    security: [{ bearer: [] }],
    defaultInputModes: ["text/plain", "application/json"],
    defaultOutputModes: ["text/plain", "application/json"],
    skills,
  };
}

/**
 * The strict card of `agent`, served at the origin (`serve --a2a-origin-agent`): v1.0 fields only (a reader that
 * refuses unknown fields takes it), one interface (JSON-RPC 1.0), no streaming, `text/plain` in and out, Bearer.
 * What Hermes's strict A2A client (plugins/platforms/a2a/client.py, `_validate_card`) accepts and nothing more:
 * interop still answers every method at the endpoint, the card just promises less.
 */
export function strictAgentCard(agent: AgentName, baseUrl: string): Record<string, unknown> {
  return {
    name: agent,
    description:
      `${agent}, reached through interop: a message is stored before it is acknowledged and delivered once; ` +
      "the task completes with the agent's reply",
    version: VERSION,
    supportedInterfaces: [{ url: agentEndpoint(agent, baseUrl), protocolBinding: "JSONRPC", protocolVersion: "1.0" }],
    capabilities: { streaming: false, pushNotifications: false },
    securitySchemes: { bearer: { httpAuthSecurityScheme: BEARER } },
    securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{
      id: "message",
      name: `Message ${agent}`,
      description: `Send ${agent} a message; it is kept in ${agent}'s interop inbox until ${agent} takes it`,
      tags: ["interop", "message"],
    }],
  };
}
