/** The A2A agent card interop serves for each agent it knows: one JSON-RPC endpoint, read by v1.0 and v0.3 clients alike. */
import type { AgentName } from "../message.ts";
import type { IncomingRequest } from "../runtime/types.ts";
import { VERSION } from "../version.ts";

/** Where the A2A routes live: `/a2a/<agent>` (JSON-RPC) and `/a2a/<agent>/.well-known/agent-card.json`. */
export const A2A_PREFIX = "/a2a";
/** The card's paths under an agent: the current name, and `agent.json` as v0.2 clients ask for it. */
export const CARD_PATHS = new Set(["/.well-known/agent-card.json", "/.well-known/agent.json"]);

/**
 * The base URL the card advertises: the request's `Host`, which the host rule (`checkOrigin`) has already
 * accepted as one of the broker's names (an IP address, localhost, `--host`, `--allowed-hosts`), so a card can
 * never point a client at a name of an attacker's. Without a Host (HTTP/1.0), the address the request came to.
 */
export function cardBaseUrl(request: IncomingRequest): string {
  const host = request.header("host") ?? request.url.host;
  return `http://${host}`;
}

/**
 * The card of `agent`: the v1.0 fields (`supportedInterfaces`, `securityRequirements`) and the v0.3 ones (`url`,
 * `protocolVersion`, `preferredTransport`, `security`) side by side, and a security scheme both versions parse:
 * each version's reader ignores the other's fields.
 */
export function agentCard(agent: AgentName, baseUrl: string): Record<string, unknown> {
  const url = `${baseUrl}${A2A_PREFIX}/${agent}`;
  return {
    name: agent,
    description: `${agent}, reached through interop: a message is stored before it is acknowledged and delivered once; ` +
      "the task completes with the agent's reply",
    version: VERSION,
    supportedInterfaces: [
      { url, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
      { url, protocolBinding: "JSONRPC", protocolVersion: "0.3" },
    ],
    url,
    protocolVersion: "0.3.0",
    preferredTransport: "JSONRPC",
    capabilities: { streaming: true, pushNotifications: false },
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        httpAuthSecurityScheme: { scheme: "Bearer", description: "an interop token (interop token create --agent NAME)" },
      },
    },
    securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    security: [{ bearer: [] }],
    defaultInputModes: ["text/plain", "application/json"],
    defaultOutputModes: ["text/plain", "application/json"],
    skills: [{
      id: "message",
      name: `Message ${agent}`,
      description: `Send ${agent} a message; it is kept in ${agent}'s interop inbox until ${agent} takes it`,
      tags: ["interop", "message"],
    }],
  };
}
